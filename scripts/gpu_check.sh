#!/usr/bin/env bash
# The accelerator check, one command: the tests of models, steps and sharding under the
# portable kernels, the four benchmark workloads in float32 and bfloat16, and PyTorch's
# implementation of the same workloads on the same device where torch is installed.
#
#   bash scripts/gpu_check.sh                       # on a GPU (or TPU) machine, from the repo root
#   GPU_CHECK_QUICK=1 bash scripts/gpu_check.sh     # the same steps, one timed call each
#
# Every step prints JSON lines ({"check": ...} for the script's own lines, the benchmark's
# and bench_torch.py's lines as they are). A machine without grain, ml_collections or
# tensorboardX takes them from wheels in .whl/ (scripts/gpu_wheels.sh downloads them on a
# machine with a package index); they are installed into a temporary folder, not the
# machine's environment. Everything runs on the backend JAX picks (on a CPU-only machine:
# the CPU, with the portable kernels, which is how the script is checked before use).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
QUICK=${GPU_CHECK_QUICK:-0}
status=0

line() { printf '{"check": "%s", %s}\n' "$1" "$2"; }

if compgen -G ".whl/*.whl" > /dev/null; then
  site=$(mktemp -d)
  if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target "$site" .whl/*.whl; then
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    line wheels "\"installed\": $(ls .whl/*.whl | wc -l)"
  else
    line wheels '"installed": 0, "error": "pip install of .whl/*.whl failed"'
    status=1
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export VISION_KERNELS=portable
export VISION_TEST_XLA_OPT=default  # the tests compile as the scripts do on the accelerator

"$PYTHON" - <<'EOF' || status=1
import json, jax
info = {"check": "environment", "jax": jax.__version__, "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()]}
try:
  import torch
  info["torch"] = torch.__version__
  info["torch_cuda"] = torch.cuda.is_available()
except ImportError:
  info["torch"] = None
print(json.dumps(info), flush=True)
EOF

# Models, layers, kernels (both forms on this backend), steps, losses and batch-sharded
# gradients; no test here needs a dataset.
tests=(
  tests/test_ops_conv.py tests/test_ops_depthwise.py tests/test_ops_dropout.py
  tests/test_ops_shards.py tests/test_layers.py tests/test_kernels.py tests/test_backbones.py
  tests/test_gan.py tests/test_autoencoders.py tests/test_optimize.py tests/test_optim.py
  tests/test_losses.py
)
start=$SECONDS
report=$(mktemp)
"$PYTHON" -m pytest -q -p no:cacheprovider -m "not slow and not data" "${tests[@]}" \
  > "$report" 2>&1
rc=$?
summary=$(tail -n 1 "$report" | tr -d '"=')
line tests "\"returncode\": $rc, \"summary\": \"$summary\", \"seconds\": $((SECONDS - start))"
if [ "$rc" -ne 0 ]; then
  grep -E "^(FAILED|ERROR)" "$report" | head -n 40 >&2
  status=1
fi

bench=()
torch_bench=()
if [ "$QUICK" = 1 ]; then
  bench=(--repeats 1 --warmup 0)
  torch_bench=(--repeats 1)
fi
for dtype in float32 bfloat16; do
  "$PYTHON" scripts/benchmark.py --dtype "$dtype" "${bench[@]}" || status=1
done
if "$PYTHON" -c "import torch" 2> /dev/null; then
  for dtype in float32 bfloat16; do
    "$PYTHON" scripts/bench_torch.py --device auto --dtype "$dtype" "${torch_bench[@]}" || status=1
  done
else
  line torch '"skipped": "torch is not installed"'
fi
line done "\"returncode\": $status, \"seconds\": $SECONDS"
exit $status
