"""Multi-process runs (jax.distributed on localhost, gloo collectives, one CPU device each).

Each run is the README's manual multi-host command, started by
:func:`tests.multiprocess.launch`, and compared with one process that simulates
the same number of devices (``--xla_force_host_platform_device_count``) with
the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import time

import pytest

from tests.conftest import run_script
from tests.multiprocess import free_port, launch

TIMING_KEYS = ("wall_seconds", "train_seconds", "feature_seconds", "budget_seconds")
CONFIGS = {
  "classification": "experiments/cnn_fashion_mnist.py:tiny",
  "transfer_head": "experiments/transfer.py:head,tiny",
  "vae": "experiments/vae.py:tiny",
  "dcgan": "experiments/gan.py:tiny",
}


def records(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def assert_same_run(got, want, rel=1e-5) -> None:
  """Same results.json keys and values, and the same metrics records, to ``rel``."""
  got_results = json.load(open(os.path.join(got, "results.json")))
  want_results = json.load(open(os.path.join(want, "results.json")))
  keys = sorted(set(want_results) - set(TIMING_KEYS))
  assert sorted(set(got_results) - set(TIMING_KEYS)) == keys
  for key in keys:
    assert math.isclose(got_results[key], want_results[key], rel_tol=rel, abs_tol=1e-7), (
      key,
      got_results[key],
      want_results[key],
    )
  got_records, want_records = records(got), records(want)
  assert [r["step"] for r in got_records] == [r["step"] for r in want_records]
  for g, w in zip(got_records, want_records):
    assert sorted(g) == sorted(w)
    for key, value in w.items():
      if not key.endswith("seconds"):
        assert math.isclose(g[key], value, rel_tol=rel, abs_tol=1e-7), (w["step"], key)


def reference_run(spec, workdir, data_env, *overrides, devices: int = 2) -> None:
  """One process with ``devices`` simulated CPU devices."""
  run_script(
    "train.py",
    "--config",
    spec,
    "--workdir",
    str(workdir),
    *overrides,
    env=data_env,
    check=True,
    extra_env={"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"},
  )


def assert_all_succeeded(finished) -> None:
  for index, f in enumerate(finished):
    assert f.returncode == 0, f"process {index} ({f.returncode}):\n{f.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["classification", "transfer_head", "vae"])
def test_two_processes_match_one_process_with_two_devices(name, data_env, tmp_path, monkeypatch):
  monkeypatch.setenv("VISION_CACHE_DIR", str(tmp_path / "cache"))
  spec = CONFIGS[name]
  reference_run(spec, tmp_path / "one", data_env)
  # Its own feature cache, so that the two processes extract the probe's features themselves.
  finished = launch(
    "train.py",
    "--config",
    spec,
    "--workdir",
    str(tmp_path / "two"),
    extra_env={"VISION_CACHE_DIR": str(tmp_path / "cache_two")},
  )
  assert_all_succeeded(finished)
  assert_same_run(tmp_path / "two", tmp_path / "one")
  # Process 0 alone wrote the files: the same ones as the one-process run, nothing else.
  assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))
  assert "[vision] task=" in finished[0].stdout and "[vision]" not in finished[1].stdout
  if name == "classification":
    # And eight simulated devices: the same global batch split four times finer gives the
    # same losses over the first logged steps (the loss of the first batch and of the second,
    # after one update from the all-reduced gradient) up to the order of the sums. Later
    # steps are not compared: rounding differences of that order move ReLU and max-pool
    # ties, and training amplifies them to ~1e-3 within a few steps.
    reference_run(spec, tmp_path / "eight", data_env, devices=8)
    eight, two = records(tmp_path / "eight"), records(tmp_path / "one")
    assert [r["step"] for r in eight] == [r["step"] for r in two]
    first = next(i for i, r in enumerate(two) if "train/loss" in r)
    assert two[first]["step"] == 2  # the mean train loss of steps 1 and 2
    assert math.isclose(eight[first]["train/loss"], two[first]["train/loss"], rel_tol=1e-6)


@pytest.mark.slow
def test_dcgan_killed_and_restarted_on_two_processes_matches_one_process(
  data_env, tmp_path, monkeypatch
):
  """The DCGAN with its feature metrics. Its feature classifier is not cached yet, so the two
  processes first train it together; then process 1 dies as the GAN's save of step 8 starts,
  process 0 must stop on its own, and both started again resume the GAN from step 4 (the
  generator average, the fixed-noise snapshots and both optimizers) to the results of one
  uninterrupted process."""
  monkeypatch.setenv("VISION_CLASSIFIER_CACHE", str(tmp_path / "classifiers"))
  spec = CONFIGS["dcgan"]
  workdir = str(tmp_path / "two")
  start = time.time()
  finished = launch(
    "train.py",
    "--config",
    spec,
    "--workdir",
    workdir,
    timeout=150,
    extra_env=[{}, {"VISION_KILL_AT": "save:8", "VISION_KILL_IN": workdir}],
  )
  assert finished[1].returncode == -9, finished[1].stderr[-3000:]
  assert finished[0].returncode not in (0, None), "process 0 went on without its peer"
  assert time.time() - start < 150
  (classifier,) = os.listdir(tmp_path / "classifiers")
  assert os.path.exists(tmp_path / "classifiers" / classifier / "results.json")
  assert "4" in os.listdir(os.path.join(workdir, "checkpoints"))
  assert not os.path.exists(os.path.join(workdir, "results.json"))

  restarted = launch("train.py", "--config", spec, "--workdir", workdir)
  assert_all_succeeded(restarted)
  assert "start=4" in restarted[0].stdout
  reference_run(spec, tmp_path / "one", data_env)  # loads the classifier the two trained
  assert_same_run(workdir, tmp_path / "one")
  assert sorted(os.listdir(workdir)) == sorted(os.listdir(tmp_path / "one"))


@pytest.mark.slow
def test_unreachable_coordinator_is_one_clear_error(data_env, tmp_path):
  start = time.time()
  proc = run_script(
    "train.py",
    "--distributed",
    f"--coordinator_address=localhost:{free_port()}",
    "--num_processes=2",
    "--process_id=1",
    "--distributed_timeout=3",
    "--config",
    CONFIGS["classification"],
    "--workdir",
    str(tmp_path / "run"),
    env=data_env,
    timeout=60,
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "error: process 1 of 2: the run's processes did not all join within 3 s" in proc.stderr
  assert "is process 0 running and reachable at localhost:" in proc.stderr
  assert "Traceback" not in proc.stderr
  assert time.time() - start < 30
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize(
  "args, message",
  [
    (["--distributed", "--num_processes=2"], "missing: --coordinator_address"),
    (
      ["--distributed", "--coordinator_address=localhost", "--num_processes=2", "--process_id=0"],
      "needs a port",
    ),
    (
      ["--distributed", "--coordinator_address=h:1", "--num_processes=2", "--process_id=2"],
      "outside 0..1",
    ),
    (["--num_processes=2"], "need --distributed"),
  ],
)
def test_bad_distributed_arguments_are_user_errors(args, message):
  from vision import cli
  from vision.errors import UserError

  with pytest.raises(UserError, match=message.replace(".", r"\.")):
    cli.parse_args([*args, "--config", CONFIGS["classification"], "--workdir", "x"])
