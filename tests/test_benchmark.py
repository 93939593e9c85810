"""scripts/benchmark.py: the workloads build from the project's steps and report sane timings."""

import json

import jax
import numpy as np
import pytest

from tests.conftest import run_script
from vision.drivers import benchmark
from vision.errors import InputError
from vision.ops import kernels


@pytest.mark.slow
@pytest.mark.parametrize(
  "build",
  [
    lambda: benchmark.build_dcgan(batch_size=8),
    lambda: benchmark.build_vae(batch_size=8),
    lambda: benchmark.build_pgd(batch_size=2, size=32, steps=3, model="efficientnet_lite_tiny"),
  ],
  ids=["dcgan", "vae", "pgd"],
)
def test_workloads_time_the_real_step(build):
  work = build()
  result = benchmark.time_workload(work, repeats=2, warmup=1)
  assert result["workload"] == work.name
  assert result["ms_per_step"] > 0 and result["images_per_s"] > 0
  # images/s and ms/step describe the same measurement (every step sees the whole batch).
  expected = work.images_per_call / (result["ms_per_step"] / 1e3)
  assert result["images_per_s"] == pytest.approx(expected, rel=0.02)
  assert result["compile_s"] >= 0
  assert result["flops_per_step"] is None or result["flops_per_step"] > 0


@pytest.mark.slow
def test_the_timed_step_trains_the_state():
  """The benchmark threads the donated state through the calls, as training does."""
  work = benchmark.build_vae(batch_size=8)
  before = jax.tree.map(np.asarray, work.args[0].params)
  step = jax.jit(work.step)
  state, metrics = step(*work.args)
  assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, np.asarray(b)), before, state.params)
  assert all(jax.tree.leaves(changed))


def test_matmul_rate_is_positive():
  assert benchmark.matmul_rate(n=128, repeats=2) > 1e6


def test_run_sets_the_kernels_and_refuses_unknown_workloads():
  with kernels.use("auto"):  # restores the process-wide choice afterwards
    first = next(benchmark.run(["pgd"], matmul=1e9, kernel_choice="portable"))
    assert kernels.current() == "portable"
  assert first["workload"] == "matmul" and first["kernels"] == "portable"
  with pytest.raises(InputError, match="unknown workload"):
    next(benchmark.run(["dcgann"]))


@pytest.mark.slow
def test_script_rejects_unknown_workload():
  proc = run_script("benchmark.py", "dcgann")
  assert proc.returncode == 2
  assert "unknown workload" in proc.stderr and "dcgan" in proc.stderr


FAKE_REFERENCE = """
import json, sys
print("warming up")
print(json.dumps({"workload": sys.argv[1], "images_per_s": 1000.0, "ms_per_step": 128.0}))
"""


@pytest.mark.slow
def test_compare_torch_pairs_and_summarizes(tmp_path):
  reference = tmp_path / "bench_fake.py"
  reference.write_text(FAKE_REFERENCE)
  proc = run_script("compare_torch.py", "--reference", str(reference), "--rounds", "2", "vae")
  assert proc.returncode == 0, proc.stderr
  lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
  pairs, summary = lines[:2], lines[2]
  assert [p["round"] for p in pairs] == [1, 2]
  for pair in pairs:
    assert pair["torch_images_per_s"] == 1000.0 and pair["jax_images_per_s"] > 0
    # The ratio is printed to 3 decimals.
    assert pair["ratio"] == pytest.approx(pair["jax_images_per_s"] / 1000.0, abs=5e-4)
  assert summary["workload"] == "vae" and len(summary["ratios"]) == 2


@pytest.mark.slow
def test_compare_torch_rejects_a_missing_reference(tmp_path):
  proc = run_script("compare_torch.py", "--reference", str(tmp_path / "nope.py"), "vae")
  assert proc.returncode == 2 and "no bench_torch.py" in proc.stderr
