"""What a model family gives the training loop (:mod:`vision.train.loop`): a :class:`Task`.

Each family module (``classification``, ``transfer``, ``autoencoding``,
``generative``, ``gan``) has a function ``build(config, splits, num_steps) ->
Task``. It never changes its arguments; splits it trains on in another form
(the linear probe's cached features) come back in ``Task.splits``. The loop
owns data, sharding, jit, checkpoints, logging and resumption; the task owns
the model, the maths of one step and the final report.

Everything that a resumed run needs lives in the train state that ``init``
returns (so orbax checkpoints it); the host-side hooks read the state and
return a new one, they do not keep their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

State = Any
Batch = dict[str, Any]
Metrics = dict[str, Any]


def mean_of_sums(totals: Mapping[str, float]) -> dict[str, float]:
  """Summed eval outputs -> means: every key divided by the summed ``'count'``."""
  count = max(float(totals.get("count", 1.0)), 1.0)
  return {k: float(v) / count for k, v in totals.items() if k != "count"}


def _keep_state(state, metrics):
  del metrics
  return state


def _never(state) -> bool:
  del state
  return False


def _params(state):
  return state.params


@dataclasses.dataclass(frozen=True)
class Task:
  """Pure functions the loop jits, and host-side hooks it calls.

  init(rng, batch) -> state
      pure; ``batch`` holds 'image' (uint8) and 'label' (a few examples).
  train_step(state, batch, rng) -> (state, metrics)
      pure and jittable; per-step randomness from ``jax.random.fold_in(rng, state.step)``;
      metrics: a dict of scalar arrays.
  eval_step(state, batch) -> sums
      pure; per-batch *sums* weighted by ``batch['mask']`` (and a 'count').
  report(state, ctx) -> dict[str, float]
      host-side final evaluation: test metrics, pictures in ``ctx.workdir``
      (:class:`vision.train.loop.ReportContext`).
  splits
      the splits the loop trains and evaluates on (the ones given, unless the
      task trains on another form of them).
  summarize_eval(totals) -> metrics
      summed eval outputs -> means.
  after_eval(state, val_metrics) -> state
      host-side, after each validation pass (e.g. early stopping's best weights).
  should_stop(state) -> bool
      host-side, after every step.
  trainable_params(state) -> pytree
      what the parameter count at the start of a run counts.
  """

  init: Callable[[Any, Batch], State]
  train_step: Callable[[State, Batch, Any], tuple[State, Metrics]]
  eval_step: Callable[[State, Batch], Metrics]
  report: Callable[[State, Any], dict[str, float]]
  splits: Mapping[str, Any]
  summarize_eval: Callable[[Mapping[str, float]], dict[str, float]] = mean_of_sums
  after_eval: Callable[[State, dict[str, float]], State] = _keep_state
  should_stop: Callable[[State], bool] = _never
  trainable_params: Callable[[State], Any] = _params
