#!/usr/bin/env bash
# Downloads into .whl/ the wheels that scripts/gpu_check.sh installs on an accelerator
# machine without a package index: the project's dependencies that such a machine's
# JAX/PyTorch image usually lacks. Run it where pip can reach an index, from the repo root:
#
#   bash scripts/gpu_wheels.sh            # for the machine's Python 3.12 (the default)
#   PY_VERSION=3.11 bash scripts/gpu_wheels.sh
#
# .whl/ is ignored by git; copy or carry it with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${PY_VERSION:-3.12}
PACKAGES=(grain==0.2.18 array-record==0.8.6 portpicker ml-collections==1.1.0 tensorboardX==2.6.5)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
    manylinux1_x86_64 any; do
  platforms+=(--platform "$p")
done
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp "${platforms[@]}" -d .whl "${PACKAGES[@]}"
ls -1 .whl
