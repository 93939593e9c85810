#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine (root): the Fashion-MNIST package,
# a virtualenv in .venv, and this package with its test and conversion extras.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }) >/dev/null \
      || echo "warning: could not install dataset-fashion-mnist; tests fall back to synthetic IDX files" >&2
  else
    echo "warning: Fashion-MNIST missing; install it with: sudo apt-get install dataset-fashion-mnist" >&2
  fi
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned to the CPU build on this disk; an unpinned torch pulls a CUDA build.
.venv/bin/python -m pip install -q -e '.[test]'
