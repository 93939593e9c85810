"""The interface between an experiment and the training loop (:mod:`vision.train.loop`).

Subclass :class:`Task`, add it to ``loop.TASKS``, and set ``config.task`` to its
name. The loop owns data, sharding, jit, checkpoints, logging and resumption;
the task owns the model, the maths of one step and the final evaluation.
"""

from __future__ import annotations

from typing import Any


class Task:
  """Base class with the optional hooks filled in.

  Required:
    init(rng, batch) -> state                pure; ``batch`` holds 'image' (uint8) and 'label'
    train_step(state, batch, rng) -> (state, metrics)
                                             pure and jittable; derive per-step randomness
                                             with ``jax.random.fold_in(rng, state.step)``;
                                             metrics: dict of scalar arrays
    eval_step(state, batch) -> sums          pure; per-batch *sums* weighted by batch['mask']
    finalize(state, ctx) -> dict[str, float] host-side: test metrics, pictures in ctx.workdir
  """

  num_steps: int | None = None  # set by the loop before ``init``

  def __init__(self, config, splits):
    self.config = config
    self.splits = splits

  def trainable_params(self, state) -> Any:
    return state.params

  def summarize_eval(self, totals: dict[str, float]) -> dict[str, float]:
    """Turns summed eval outputs into means (divides by the summed 'count')."""
    count = max(float(totals.get("count", 1.0)), 1.0)
    return {k: float(v) / count for k, v in totals.items() if k != "count"}

  def after_eval(self, state, val_metrics: dict[str, float]):
    return state

  def should_stop(self, state) -> bool:
    return False
