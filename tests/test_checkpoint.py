"""Checkpoints: a damaged newest one falls back to an older one; a tree mismatch is refused."""

import gc
import json
import logging
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import metrics_of, run_script, train_losses
from vision.errors import CheckpointError, CheckpointMismatchError, UserError
from vision.train.checkpoint import Checkpointer

TINY = "experiments/cnn_fashion_mnist.py:tiny"
# A failed TensorStore read can leave orbax's event loop with a pending callback that
# reports "Event loop is closed" when it is collected; the restore itself is unaffected.
READ_FAILURE_NOISE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def tiny_state(value: float, inputs: int = 4) -> dict:
  return {
    "step": jnp.asarray(int(value), jnp.int32),
    "params": {
      "Dense_0": {
        "kernel": jnp.full((inputs, 3), value, jnp.float32),
        "bias": jnp.full((3,), value, jnp.float32),
      }
    },
  }


def data_files(step_dir) -> list[str]:
  """The data files (TensorStore OCDBT b-tree nodes and array values) of one checkpoint,
  largest first: small arrays are stored inside the nodes of ``default/d/``, large ones
  in ``default/ocdbt.process_N/d/``."""
  files = [
    os.path.join(root, name)
    for root, _, names in os.walk(step_dir)
    for name in names
    if os.path.basename(root) == "d"
  ]
  assert files, f"no data files under {step_dir}"
  return sorted(files, key=os.path.getsize, reverse=True)


def truncate(path: str) -> None:
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def damage(step_dir) -> None:
  for path in data_files(step_dir):
    truncate(path)


def save_steps(directory, *steps) -> None:
  checkpointer = Checkpointer(str(directory), keep=5, async_save=False)
  for step in steps:
    checkpointer.save(step, tiny_state(step))
  checkpointer.close()


@pytest.fixture
def reopen():
  """Opens a checkpoint folder as a resumed run does; closes every opened one afterwards."""
  opened = []

  def open_folder(folder) -> Checkpointer:
    opened.append(Checkpointer(str(folder), keep=5, async_save=False))
    return opened[-1]

  yield open_folder
  for checkpointer in opened:
    checkpointer.close()
  gc.collect()  # orbax's leftovers of a failed read go now, within the test that caused them


@READ_FAILURE_NOISE
def test_damaged_newest_falls_back_and_is_replaced_by_the_next_save(tmp_path, reopen, caplog):
  folder = tmp_path / "checkpoints"
  save_steps(folder, 1, 2)
  damage(folder / "2")

  checkpointer = reopen(folder)
  with caplog.at_level(logging.WARNING):
    state, step = checkpointer.restore_latest(tiny_state(0))
  assert step == 1 and int(state["step"]) == 1
  np.testing.assert_array_equal(state["params"]["Dense_0"]["kernel"], np.ones((4, 3)))
  assert "checkpoint step 2" in caplog.text and "does not restore" in caplog.text
  assert (folder / "2").exists()  # left on disk
  assert checkpointer.latest_step() == 1

  # The run goes on: its next save of step 2 replaces the damaged one.
  checkpointer.save(2, tiny_state(7))
  checkpointer.wait()
  state, step = reopen(folder).restore_latest(tiny_state(0))
  assert step == 2 and float(state["params"]["Dense_0"]["bias"][0]) == 7.0


@READ_FAILURE_NOISE
def test_no_readable_checkpoint_is_a_user_error_naming_the_folder(tmp_path, reopen):
  folder = tmp_path / "checkpoints"
  save_steps(folder, 1, 2)
  damage(folder / "1")
  damage(folder / "2")
  checkpointer = reopen(folder)
  with pytest.raises(CheckpointError) as e:
    checkpointer.restore_latest(tiny_state(0))
  message = str(e.value)
  assert isinstance(e.value, UserError)
  assert message.startswith(f"no checkpoint in {folder} can be restored")
  assert "step 2:" in message and "step 1:" in message and "\n" not in message
  assert f"delete {folder} to start this run over, or use a fresh --workdir" in message
  assert (folder / "1").exists() and (folder / "2").exists()


@READ_FAILURE_NOISE
def test_restore_of_the_latest_step_does_not_fall_back(tmp_path, reopen):
  # A finished run's final state (the feature classifier's): an older one would be wrong.
  folder = tmp_path / "checkpoints"
  save_steps(folder, 1, 2)
  assert int(reopen(folder).restore(tiny_state(0))["step"]) == 2
  damage(folder / "2")
  with pytest.raises(CheckpointError, match=r"the checkpoint at step 2 in .* cannot be read"):
    reopen(folder).restore(tiny_state(0))


def test_shape_mismatch_names_the_leaf_and_does_not_fall_back(tmp_path, reopen):
  folder = tmp_path / "checkpoints"
  save_steps(folder, 1, 2)
  checkpointer = reopen(folder)
  with pytest.raises(CheckpointMismatchError) as e:
    checkpointer.restore_latest(tiny_state(0, inputs=5))
  message = str(e.value)
  assert "at step 2" in message  # the newest, no fallback to step 1
  assert "params/Dense_0/kernel: checkpoint (4, 3) float32, config (5, 3) float32" in message
  assert "fresh --workdir" in message
  assert not checkpointer.unreadable


def test_missing_leaf_is_a_mismatch(tmp_path, reopen):
  folder = tmp_path / "checkpoints"
  save_steps(folder, 1)
  state = tiny_state(0)
  state["params"]["Dense_1"] = {"kernel": jnp.zeros((3, 2))}
  with pytest.raises(CheckpointMismatchError, match="params/Dense_1/kernel: in the config's state"):
    reopen(folder).restore_latest(state)


@pytest.mark.slow
def test_damaged_newest_checkpoint_falls_back_and_matches_uninterrupted_run(data_env, tmp_path):
  reference = tmp_path / "reference"
  run_script("train.py", "--config", TINY, "--workdir", str(reference), env=data_env, check=True)

  # Killed while saving step 12: checkpoints 4 and 8 are complete, 12 is not.
  damaged = tmp_path / "damaged"
  args = ("--config", TINY, "--workdir", str(damaged))
  run_script("train.py", *args, env=data_env, extra_env={"VISION_KILL_AT": "save:12"})
  steps = sorted(int(n) for n in os.listdir(damaged / "checkpoints") if n.isdigit())
  assert steps == [4, 8], steps
  truncate(data_files(damaged / "checkpoints" / "8")[0])

  proc = run_script("train.py", *args, env=data_env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "checkpoint step 8" in proc.stderr and "does not restore" in proc.stderr
  assert "start=4" in proc.stdout
  expected = json.load(open(reference / "results.json"))
  assert metrics_of(json.load(open(damaged / "results.json"))) == metrics_of(expected)
  assert train_losses(str(damaged)) == train_losses(str(reference))

  # A finished run whose newest checkpoint is damaged afterwards: the same command again
  # resumes from the older one, trains the last steps again and ends with the same results.
  finished = tmp_path / "finished"
  shutil.copytree(reference, finished)
  (finished / "results.json").unlink()  # the loop writes it anew; the check reads the new one
  steps = sorted(int(n) for n in os.listdir(finished / "checkpoints") if n.isdigit())
  assert len(steps) == 2, steps
  truncate(data_files(finished / "checkpoints" / str(steps[-1]))[0])
  proc = run_script("train.py", "--config", TINY, "--workdir", str(finished), env=data_env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"checkpoint step {steps[-1]}" in proc.stderr and "does not restore" in proc.stderr
  assert f"start={steps[0]}" in proc.stdout
  assert metrics_of(json.load(open(finished / "results.json"))) == metrics_of(expected)
