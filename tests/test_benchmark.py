"""scripts/benchmark.py: the workloads build from the project's steps and report sane timings."""

import pytest

from tests.conftest import run_script
from vision import benchmark


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


def test_the_timed_step_trains_the_state():
  """The benchmark threads the donated state through the calls, as training does."""
  import jax
  import numpy as np

  work = benchmark.build_vae(batch_size=8)
  before = jax.tree.map(np.asarray, work.args[0].params)
  step = jax.jit(work.step)
  state, metrics = step(*work.args)
  assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, np.asarray(b)), before, state.params)
  assert all(jax.tree.leaves(changed))


def test_matmul_rate_is_positive():
  assert benchmark.matmul_rate(n=128, repeats=2) > 1e6


def test_script_rejects_unknown_workload():
  proc = run_script("benchmark.py", "dcgann")
  assert proc.returncode == 2
  assert "unknown workload" in proc.stderr and "dcgan" in proc.stderr
