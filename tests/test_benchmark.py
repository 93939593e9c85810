"""scripts/benchmark.py: the workloads build from the project's steps and report sane timings;
the PyTorch reference (torch_reference/workloads.py) defines the same networks and steps."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import ROOT, run_script
from vision.drivers import benchmark, compare_torch
from vision.errors import InputError
from vision.models.registry import create_model
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


# -- the PyTorch reference (torch_reference/workloads.py, scripts/bench_torch.py) ------------------
def _jax_param_count(module, *args, rngs=("params",), **kwargs) -> int:
  """Parameters of the project's ``module`` (shapes only, nothing computed)."""
  keys = {name: jax.random.key(i) for i, name in enumerate(rngs)}
  shapes = jax.eval_shape(lambda: module.init(keys, *args, **kwargs))
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes["params"]))


def _torch_param_count(module) -> int:
  return sum(p.numel() for p in module.parameters())


def test_torch_workloads_have_the_parameter_counts_of_the_project_models():
  """Each PyTorch network has the parameter count of the project's model for its workload,
  built as vision/drivers/benchmark.py builds it, so a changed layer on either side fails."""
  pytest.importorskip("torch")
  from torch_reference import efficientnet_lite0, workloads

  assert workloads.WORKLOADS == benchmark.WORKLOADS
  gan = create_model("dcgan", image_shape=(28, 28, 1), latent_dim=workloads.LATENT_DIM)
  images = jnp.zeros((2, 28, 28, 1))
  labels = jnp.zeros((2,), jnp.int32)
  z = jnp.zeros((2, gan.latent_dim))
  assert _jax_param_count(gan.generator, z, labels) == _torch_param_count(
    workloads.DCGANGenerator()
  )
  d_count = _jax_param_count(gan.discriminator, images, labels, rngs=("params", "dropout"))
  assert d_count == _torch_param_count(workloads.DCGANDiscriminator())

  vae = create_model("conv_vae", latent_dim=workloads.VAE_LATENT_DIM)
  noise = jnp.zeros((2, workloads.VAE_LATENT_DIM))
  assert _jax_param_count(vae, images, noise=noise) == _torch_param_count(workloads.ConvVAE())

  pictures = jnp.zeros((1, 64, 64, 3))  # the counts do not depend on the image size
  for classes in (workloads.FINETUNE_CLASSES, 1000):  # finetune's new head, pgd's ImageNet one
    network = create_model("efficientnet_lite0", num_classes=classes, dropout_rate=0.0)
    torch_network = efficientnet_lite0.EfficientNetLite0(num_classes=classes)
    assert _jax_param_count(network, pictures) == _torch_param_count(torch_network), classes


def test_torch_pgd_step_stays_in_the_ball_and_the_pixel_range():
  torch = pytest.importorskip("torch")
  from torch_reference import workloads

  torch.manual_seed(0)
  step = workloads.PGDStep(batch_size=2, size=32)
  assert not any(p.requires_grad for p in step.model.parameters())  # frozen
  assert not step.model.training  # eval mode: running batch-norm statistics
  for _ in range(6):  # 6 steps of 2/255 go past the 8/255 ball: the projection has work
    loss = step()
    distance = (step.x - step.x0).abs()
    assert float(distance.max()) <= workloads.PGD_EPS + 1e-6
    assert float(step.x.min()) >= 0.0 and float(step.x.max()) <= 1.0
  assert torch.isfinite(loss)
  assert float(distance.max()) == pytest.approx(workloads.PGD_EPS, abs=1e-6)
  # Pixels at the border of [0, 1] stay there rather than leaving the image range.
  assert bool((step.x == 0).any()) and bool((step.x == 1).any())


def test_torch_dcgan_step_updates_both_networks():
  torch = pytest.importorskip("torch")
  from torch_reference import workloads

  torch.manual_seed(0)
  step = workloads.DCGANStep(batch_size=8)
  assert step.discriminator.training and step.generator.training  # dropout, batch statistics
  before = {
    name: {k: v.detach().clone() for k, v in net.named_parameters()}
    for name, net in (("generator", step.generator), ("discriminator", step.discriminator))
  }
  d_loss, g_loss = step()
  assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
  for name, net in (("generator", step.generator), ("discriminator", step.discriminator)):
    for key, value in net.named_parameters():
      assert not torch.equal(value, before[name][key]), (name, key)
      assert value.requires_grad, (name, key)  # the generator pass unfreezes what it froze


def test_bench_torch_rejects_an_unknown_workload():
  proc = run_script("bench_torch.py", "dcgann")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "unknown workload" in proc.stderr and "dcgan" in proc.stderr


def test_without_torch_both_scripts_name_the_extra(tmp_path):
  """A PyTorch that does not import is one ``error:`` line naming the extra, from bench_torch
  and from compare_torch, which itself imports no PyTorch."""
  broken = tmp_path / "torch"
  broken.mkdir()
  (broken / "__init__.py").write_text("raise ImportError('no PyTorch here')\n")
  env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT])}
  for script in ("bench_torch.py", "compare_torch.py"):
    proc = run_script(script, "vae", extra_env=env)
    assert proc.returncode == 2, (script, proc.stderr)
    assert "Traceback" not in proc.stderr, script
    assert "pip install -e .[torch]" in proc.stderr, script
  check = "import sys, vision.drivers.compare_torch; assert 'torch' not in sys.modules"
  subprocess.run([sys.executable, "-c", check], check=True, cwd=ROOT, timeout=300)


def test_compare_torch_alternates_the_order_and_pairs_the_ratios(monkeypatch, capsys):
  """Each round runs both sides back to back, PyTorch first in odd rounds and JAX first in
  even ones, with the same flags; the summary holds every round's ratio and their median."""
  calls = []
  speeds = {"torch": [10.0, 20.0, 40.0], "jax": [30.0, 30.0, 30.0]}

  def fake_last_json(cmd):
    side = "jax" if cmd[1] == str(compare_torch.BENCHMARK_SCRIPT) else "torch"
    calls.append((side, cmd[2:]))
    return {"images_per_s": speeds[side][sum(c[0] == side for c in calls) - 1], "compile_s": 1.0}

  monkeypatch.setattr(compare_torch, "_last_json", fake_last_json)
  compare_torch.run(workloads=["vae"], rounds=3, repeats=2, dtype="bfloat16")
  assert [side for side, _ in calls] == ["torch", "jax", "jax", "torch", "torch", "jax"]
  flags = ["--repeats", "2", "--dtype", "bfloat16", "vae"]
  assert all(args[-5:] == flags for _, args in calls), calls
  lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [(p["round"], p["ratio"]) for p in lines[:3]] == [(1, 3.0), (2, 1.5), (3, 0.75)]
  assert lines[3] == {"workload": "vae", "ratios": [3.0, 1.5, 0.75], "median_ratio": 1.5}


@pytest.mark.slow
def test_compare_torch_runs_the_in_repo_reference_by_default():
  """One real round, as from a clone: scripts/bench_torch.py against scripts/benchmark.py."""
  pytest.importorskip("torch")
  proc = run_script("compare_torch.py", "--rounds", "1", "--repeats", "1", "vae")
  assert proc.returncode == 0, proc.stderr
  pair, summary = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
  assert pair["round"] == 1 and pair["workload"] == "vae"
  assert pair["torch_images_per_s"] > 0 and pair["jax_images_per_s"] > 0
  # The ratio is printed to 3 decimals.
  expected = pair["jax_images_per_s"] / pair["torch_images_per_s"]
  assert pair["ratio"] == pytest.approx(expected, abs=5e-4)
  assert summary["workload"] == "vae" and summary["ratios"] == [pair["ratio"]]


@pytest.mark.slow
def test_compare_torch_rejects_a_missing_reference(tmp_path):
  proc = run_script("compare_torch.py", "--reference", str(tmp_path / "nope.py"), "vae")
  assert proc.returncode == 2 and "no reference script" in proc.stderr


@pytest.mark.slow
def test_backbone_throughput_times_both_forms_and_the_torch_network():
  pytest.importorskip("torch")
  args = ["--batch", "2", "--size", "32", "--repeats", "1", "--torch"]
  proc = run_script("backbone_throughput.py", *args)
  assert proc.returncode == 0, proc.stderr
  lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
  assert [line.get("kernels", line.get("framework")) for line in lines] == [
    "portable",
    "cpu",
    "torch",
  ]
  for line in lines:
    assert line["model"] == "efficientnet_lite0" and line["batch"] == 2 and line["size"] == 32
    assert line["images_per_s"] > 0 and line["ms_per_step"] > 0
  proc = run_script("backbone_throughput.py", "--model", "vgg16", "--torch")
  assert proc.returncode == 2 and "efficientnet_lite0 only" in proc.stderr
