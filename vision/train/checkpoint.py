"""Checkpoints with orbax's CheckpointManager: save every N steps, keep k, resume.

orbax writes each checkpoint into a temporary folder and renames it when
complete, so a run killed during a save leaves the previous checkpoint as the
latest complete one; that is the one a restarted run restores.
"""

from __future__ import annotations

import os
import signal

import jax
import orbax.checkpoint as ocp

from vision.errors import CheckpointMismatchError


class Checkpointer:
  def __init__(self, directory: str, *, keep: int = 2, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=True,
        cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save,
      ),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore(self, state, step: int | None = None):
    """Restores ``step`` (default: latest complete) into the structure of ``state``."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    try:
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError, TypeError) as e:
      raise CheckpointMismatchError(
        f"the checkpoint at step {step} in {self.directory} does not match this model "
        f"({type(e).__name__}: {str(e)[:300]}). It was written by a different model or "
        "config: use a fresh --workdir, or delete that folder to start over."
      ) from e

  def save(self, step: int, state) -> None:
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    _maybe_inject_kill("save", step, self.directory)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def _maybe_inject_kill(event: str, step: int, directory: str) -> None:
  """Fault injection for the kill-and-resume tests: ``VISION_KILL_AT=save:STEP``.

  Sends SIGKILL to this process right after a save of STEP has *started*, so
  the save is cut off mid-way, as a pre-empted job would be. With
  ``VISION_KILL_IN=TEXT``, only a save into a checkpoint folder whose path
  contains TEXT (a run that trains another one first, e.g. a GAN's feature
  classifier, is then killed in its own training).
  """
  target = os.environ.get("VISION_KILL_AT")
  if target and target == f"{event}:{step}" and os.environ.get("VISION_KILL_IN", "") in directory:
    os.kill(os.getpid(), signal.SIGKILL)
