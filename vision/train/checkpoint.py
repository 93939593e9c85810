"""Checkpoints with orbax's CheckpointManager: save every N steps, keep k, resume.

orbax writes each checkpoint into a temporary folder and renames it when
complete, so a run killed during a save leaves the previous checkpoint as the
latest complete one. A complete checkpoint can still be damaged later (a
truncated or deleted file, a full disk, a bad copy): :meth:`Checkpointer.restore_latest`
tries the newest checkpoint first and falls back to older ones, with a warning
for each one that does not read. A damaged checkpoint stays on disk until a
save of the same step replaces it (or orbax drops it under ``keep``).

Before any array is read, the checkpoint's tree (leaf paths, shapes, dtypes)
is compared with the state the config builds. A checkpoint of another model is
an error, not damage: older checkpoints are not tried then, since every
checkpoint of a workdir comes from the same config.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from vision.errors import CheckpointError, CheckpointMismatchError


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
      # Registered up front, so that a checkpoint's metadata can be read before
      # anything was saved or restored with this manager.
      item_handlers=ocp.StandardCheckpointHandler(),
    )
    # Steps that did not restore, with the reason: not "latest" until saved again.
    self.unreadable: dict[int, str] = {}

  def latest_step(self) -> int | None:
    """The newest checkpoint on disk, not counting those :meth:`restore_latest` could not read."""
    steps = [s for s in self.manager.all_steps() if s not in self.unreadable]
    return max(steps) if steps else None

  def restore(self, state, step: int | None = None):
    """Restores ``step`` (default: the latest) into the structure of ``state``; no fallback.

    Raises :class:`CheckpointMismatchError` when the checkpoint's tree differs
    from ``state``'s and :class:`CheckpointError` when it cannot be read.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}; train the run first.")
    try:
      return self._restore(_abstract(state), step)
    except CheckpointMismatchError:
      raise
    except Exception as e:  # any failure of orbax/TensorStore to read the files
      raise CheckpointError(
        f"the checkpoint at step {step} in {self.directory} cannot be read ({_one_line(e)}). "
        f"Delete {self.directory} to train again, or use a fresh --workdir."
      ) from e

  def restore_latest(self, state) -> tuple[Any, int | None]:
    """The newest checkpoint that reads, restored into the structure of ``state``.

    Returns ``(restored state, its step)``, or ``(state, None)`` when there is
    no checkpoint. A checkpoint that fails to read is skipped with a warning
    (and left on disk); a tree mismatch raises :class:`CheckpointMismatchError`
    at once; when none reads, :class:`CheckpointError` names the steps tried.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      return state, None
    abstract = _abstract(state)
    for step in steps:
      try:
        restored = self._restore(abstract, step)
      except CheckpointMismatchError:
        raise
      except Exception as e:  # any failure of orbax/TensorStore to read the files
        self.unreadable[step] = _one_line(e)
        logging.warning(
          "checkpoint step %d in %s does not restore, skipped (left on disk): %s",
          step,
          self.directory,
          self.unreadable[step],
        )
        continue
      return restored, step
    tried = "; ".join(f"step {s}: {self.unreadable[s]}" for s in steps)
    raise CheckpointError(
      f"no checkpoint in {self.directory} can be restored (tried {tried}). The files are "
      f"damaged or incomplete: delete {self.directory} to start this run over, or use a "
      "fresh --workdir."
    )

  def _restore(self, abstract, step: int):
    metadata = self.manager.item_metadata(step)
    if metadata is None:
      raise ValueError("no readable metadata")
    check_tree(getattr(metadata, "tree", metadata), abstract, step, self.directory)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def save(self, step: int, state) -> None:
    if step in self.manager.all_steps():
      # Only a checkpoint newer than the restored one can be in the way: one that
      # did not restore. orbax refuses to save over an existing step.
      self.manager.wait_until_finished()
      why = self.unreadable.get(step, "it was not restored")
      logging.warning(
        "replacing checkpoint step %d in %s by a new save (%s)", step, self.directory, why
      )
      self.manager.delete(step)
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self.unreadable.pop(step, None)
    _maybe_inject_kill("save", step, self.directory)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def _abstract(state):
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)


def _one_line(error: Exception, limit: int = 400) -> str:
  """The innermost cause of ``error`` on one line: orbax wraps TensorStore's precise
  message (which file, which byte range) in a generic one that dumps the whole spec."""
  while error.__cause__ is not None or error.__context__ is not None:
    error = error.__cause__ or error.__context__
  text = " ".join(f"{type(error).__name__}: {error}".split())
  return text if len(text) <= limit else text[: limit - 3] + "..."


def _leaves(tree) -> dict[str, Any]:
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {"/".join(ocp.tree.str_keypath(path)): leaf for path, leaf in flat}


def _describe(leaf) -> tuple[tuple[int, ...], str]:
  dtype = getattr(leaf, "dtype", None)
  return tuple(getattr(leaf, "shape", np.shape(leaf))), "?" if dtype is None else str(dtype)


def check_tree(metadata, abstract, step: int, directory: str) -> None:
  """Raises :class:`CheckpointMismatchError` when the checkpoint's leaves differ from the state's.

  ``metadata`` is the checkpoint's tree of array metadata, ``abstract`` the
  state as shapes and dtypes; the message names the first differing leaf in
  the state's order (a missing leaf, an extra one, or its shape and dtype).
  """
  found, wanted = _leaves(metadata), _leaves(abstract)
  problems = []
  for path, leaf in wanted.items():
    if path not in found:
      problems.append(f"{path}: in the config's state, not in the checkpoint")
      continue
    if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.extended):
      continue  # PRNG keys: orbax stores their raw data, with its own shape and dtype
    have, want = _describe(found[path]), _describe(leaf)
    if have[0] != want[0] or (have[1] != want[1] and "?" not in (have[1], want[1])):
      problems.append(f"{path}: checkpoint {have[0]} {have[1]}, config {want[0]} {want[1]}")
  problems += [
    f"{p}: in the checkpoint, not in the config's state" for p in found if p not in wanted
  ]
  if problems:
    more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    raise CheckpointMismatchError(
      f"the checkpoint at step {step} in {directory} does not fit the state this config "
      f"builds: {problems[0]}{more}. It was written by a different model or config: use a "
      f"fresh --workdir, or delete {directory} to start over."
    )


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
