"""The training loop end to end: outputs, exact resume after a kill, devices, bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import ROOT, metrics_of, run_script, train_losses
from vision import configs
from vision.errors import ConfigError, NonFiniteLossError, WorkdirMismatchError
from vision.models.registry import create_model
from vision.train import classification, loop

TINY = "experiments/cnn_fashion_mnist.py:tiny"


@pytest.mark.slow
def test_tiny_run_writes_outputs(data_env, tmp_path):
  config = configs.load_config(TINY)
  results = loop.run(config, str(tmp_path))
  for name in (
    "config.json",
    "metrics.jsonl",
    "results.json",
    "curves.png",
    "confusion.png",
    "misclassified.png",
    "per_class_accuracy.md",
  ):
    assert os.path.getsize(tmp_path / name) > 0, name
  assert any(f.startswith("events") for f in os.listdir(tmp_path / "tensorboard"))
  saved = json.load(open(tmp_path / "results.json"))
  assert saved["test_accuracy"] == pytest.approx(results["test_accuracy"])
  assert 0.0 <= saved["test_accuracy"] <= 1.0 and saved["test_examples"] == 256
  assert json.load(open(tmp_path / "config.json"))["model"]["name"] == "cnn"
  # Loss went down over 12 steps from chance level.
  losses = train_losses(str(tmp_path))
  assert losses[max(losses)] < losses[min(losses)]


@pytest.mark.slow
def test_workdir_of_other_config_is_refused(data_env, tmp_path):
  loop.run(configs.load_config(TINY), str(tmp_path))
  other = configs.load_config(TINY, ["model.hidden=48"])
  with pytest.raises(WorkdirMismatchError) as e:
    loop.run(other, str(tmp_path))
  assert "model.hidden: 32 -> 48" in str(e.value) and "fresh --workdir" in str(e.value)
  # The first run's results are still there.
  assert os.path.exists(tmp_path / "results.json")


@pytest.mark.slow
def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(data_env, tmp_path):
  # The learning rate jumps by 1e30 at step 7 (2 warm-up + half of the remaining 10).
  config = configs.load_config(
    TINY,
    [
      "optim.name=sgd",
      "optim.schedule=step",
      "optim.step_boundaries=(0.5,)",
      "optim.decay_rate=1e30",
      "optim.warmup_steps=2",
    ],
  )
  with pytest.raises(NonFiniteLossError) as e:
    loop.run(config, str(tmp_path))
  message = str(e.value)
  match = re.search(r"non-finite loss at step (\d+).*last good checkpoint \(step (\d+)\)", message)
  assert match, message
  bad, good = int(match.group(1)), int(match.group(2))
  assert 4 <= good < bad <= 12 and "learning_rate" in message
  assert str(good) in os.listdir(tmp_path / "checkpoints")
  assert not os.path.exists(tmp_path / "results.json")


def _env(data_env, **extra):
  env = dict(os.environ)
  env.update(data_env)
  env.update(extra)
  env["PYTHONPATH"] = ROOT
  return env


@pytest.mark.slow
def test_kill_at_a_random_moment_and_resume_is_exact(data_env, tmp_path):
  args = [
    "--config",
    TINY,
    "--workdir",
    None,
    "--config.num_steps=30",
    "--config.checkpoint_every=5",
    "--config.log_every=1",
  ]
  reference = tmp_path / "reference"
  args[3] = str(reference)
  run_script("train.py", *args, env=data_env, check=True)
  expected = json.load(open(reference / "results.json"))

  killed = tmp_path / "killed"
  args[3] = str(killed)
  proc = subprocess.Popen(
    [sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args],
    cwd=ROOT,
    env=_env(data_env),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  metrics = killed / "metrics.jsonl"
  deadline = time.time() + 300
  while time.time() < deadline:
    if metrics.exists() and len(metrics.read_text().splitlines()) >= 12:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (killed / "results.json").exists()
  run_script("train.py", *args, env=data_env, check=True)
  assert metrics_of(json.load(open(killed / "results.json"))) == metrics_of(expected)


@pytest.mark.slow
def test_batch_not_divisible_by_devices_is_clear(data_env, tmp_path):
  proc = run_script(
    "train.py",
    "--config",
    TINY,
    "--workdir",
    str(tmp_path),
    "--config.batch_size=60",
    env=data_env,
    extra_env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
  )
  assert proc.returncode == 2
  assert "global batch size 60 is not divisible by the 8 devices" in proc.stderr


def test_cnn_with_more_pooling_blocks_than_the_image_allows_is_a_config_error():
  images = jnp.zeros((1, 28, 28, 1))
  create_model("cnn", widths=(4, 4, 4, 4)).init(jax.random.key(0), images)  # 28 -> 1
  with pytest.raises(ConfigError, match=r"5 blocks of 2x2 pooling shrink 28x28 images.*at most 4"):
    create_model("cnn", widths=(4,) * 5).init(jax.random.key(0), images)


@pytest.mark.slow
def test_cli_unknown_config_and_field(tmp_path):
  proc = run_script("train.py", "--config", "experiments/nope.py", "--workdir", str(tmp_path))
  assert proc.returncode == 2 and "config file 'experiments/nope.py' not found" in proc.stderr
  proc = run_script(
    "train.py", "--config", TINY, "--workdir", str(tmp_path), "--config.optim.lr=0.1"
  )
  assert proc.returncode == 2 and "unknown config field 'optim.lr'" in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params(data_env, tmp_path):
  config = configs.load_config(TINY, ["model.dtype=bfloat16", "num_steps=4", "eval_every=0"])
  results = loop.run(config, str(tmp_path))
  assert np.isfinite(results["test_loss"])

  train = loop.load_splits(config)["train"]
  task = classification.build(config, {"train": train}, num_steps=4)
  images = np.zeros((2, 28, 28, 1), np.uint8)
  state = task.init(jax.random.key(0), {"image": images})
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(state.params))
  model = classification.make_model(config.model, train.num_classes)
  logits, features = model.apply(
    {"params": state.params, "batch_stats": state.batch_stats}, images, train=False
  )
  assert features["block1_conv1"].dtype == jnp.bfloat16


@pytest.mark.slow
def test_early_stopping_stops_and_reports_the_best_validation_weights(data_env, tmp_path):
  """Patience 1 with an evaluation after every step: the run stops at the first evaluation
  that does not beat the best one, long before ``num_steps``, and reports the weights of the
  best evaluation (kept in the donated state, no buffer shared with the current ones)."""
  num_steps = 40
  config = configs.load_config(
    TINY,
    [
      "early_stopping_patience=1",
      "eval_every=1",
      "log_every=1",
      f"num_steps={num_steps}",
      "checkpoint_every=0",
    ],
  )
  results = loop.run(config, str(tmp_path))
  with open(tmp_path / "metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  val = [(r["step"], r["val/accuracy"], r["val/loss"]) for r in records if "val/accuracy" in r]
  assert val, "no validation evaluations were logged"
  # The stopping rule replayed on the logged evaluations: the first one that is not better.
  best, stop = -1.0, None
  for step, accuracy, _ in val:
    if accuracy <= best:
      stop = step
      break
    best = accuracy
  assert stop is not None, f"validation accuracy rose at every one of {len(val)} evaluations"
  assert stop < num_steps
  # Training and evaluation ended there: no step after it was logged.
  trained = [r["step"] for r in records if "train/loss" in r]
  assert trained == list(range(1, stop + 1)), trained[-5:]
  assert [s for s, _, _ in val] == list(range(1, stop + 1))
  assert str(stop) in os.listdir(tmp_path / "checkpoints")  # the stopped state is saved
  # The report evaluates the best evaluation's weights, not the last ones: its validation
  # accuracy is the best and its validation loss that of the best evaluation.
  best_step, best_accuracy, best_loss = max(val, key=lambda v: (v[1], -v[0]))
  assert best_step < stop
  assert results["val_accuracy"] == pytest.approx(best_accuracy, abs=1e-6)
  assert results["val_loss"] == pytest.approx(best_loss, rel=1e-5)
  assert results["val_loss"] != pytest.approx(val[-1][2], rel=1e-5)
