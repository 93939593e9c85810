#!/usr/bin/env bash
# Set-up, lint, then the whole test suite (slow end-to-end tests included), in two
# pytest-xdist workers: much of the suite is XLA compilation, which is single-threaded,
# so two processes keep both cores busy (VISION_TEST_WORKERS=0 runs in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
workers=${VISION_TEST_WORKERS:-2}
parallel=()
[ "$workers" -gt 0 ] && parallel=(-n "$workers" --dist worksteal)
.venv/bin/python -m pytest -q --timeout=900 --durations=20 "${parallel[@]}" "$@"
