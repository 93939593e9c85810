"""Optimizers and learning-rate schedules by name, from an ``optim`` config group.

The classic training tricks as flags: optimizer (sgd, momentum, nesterov,
adam, adamw, rmsprop, adagrad), schedule (constant, cosine, step, exponential)
with linear warm-up, gradient clipping by global norm and weight decay. The group's
fields and their defaults: ``optim()`` in experiments/common.py.
"""

from __future__ import annotations

import optax

from vision.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("constant", "cosine", "step", "exponential")


def make_schedule(optim, total_steps: int) -> optax.Schedule:
  """Learning rate per step: warm-up for ``warmup_steps``, then the named decay."""
  lr = optim.learning_rate
  warmup = int(optim.get("warmup_steps", 0))
  decay_steps = max(1, total_steps - warmup)
  name = optim.get("schedule", "constant")
  if name == "constant":
    decay = optax.constant_schedule(lr)
  elif name == "cosine":
    decay = optax.cosine_decay_schedule(lr, decay_steps, alpha=optim.get("final_lr_fraction", 0.0))
  elif name == "step":
    # Multiply by decay_rate at each boundary, given as fractions of training.
    boundaries = optim.get("step_boundaries", (0.5, 0.75))
    decay = optax.piecewise_constant_schedule(
      lr, {int(b * decay_steps): optim.get("decay_rate", 0.1) for b in boundaries}
    )
  elif name == "exponential":
    # decay_rate per epoch-like period of transition_steps (e.g. 0.98 per epoch).
    decay = optax.exponential_decay(
      lr,
      transition_steps=max(1, int(optim.get("transition_steps", 1000))),
      decay_rate=optim.get("decay_rate", 0.98),
    )
  else:
    raise ConfigError(
      f"unknown schedule {name!r}; set --config.optim.schedule to one of {', '.join(SCHEDULES)}."
    )
  if warmup > 0:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), decay], [warmup])
  return decay


def _base_optimizer(optim, schedule) -> optax.GradientTransformation:
  name = optim.name
  wd = optim.get("weight_decay", 0.0)
  if name == "sgd":
    return optax.sgd(schedule)
  if name in ("momentum", "nesterov"):
    return optax.sgd(schedule, momentum=optim.get("momentum", 0.9), nesterov=name == "nesterov")
  if name == "adam":
    return optax.adam(
      schedule, b1=optim.get("b1", 0.9), b2=optim.get("b2", 0.999), eps=optim.get("eps", 1e-8)
    )
  if name == "adamw":
    return optax.adamw(
      schedule,
      b1=optim.get("b1", 0.9),
      b2=optim.get("b2", 0.999),
      eps=optim.get("eps", 1e-8),
      weight_decay=wd,
    )
  if name == "rmsprop":
    return optax.rmsprop(
      schedule,
      decay=optim.get("rms_decay", 0.9),
      eps=optim.get("eps", 1e-7),
      momentum=optim.get("momentum", 0.0) or None,
    )
  if name == "adagrad":
    return optax.adagrad(schedule)
  raise ConfigError(
    f"unknown optimizer {name!r}; set --config.optim.name to one of {', '.join(OPTIMIZERS)}."
  )


def make_optimizer(optim, total_steps: int) -> optax.GradientTransformation:
  """The full gradient transformation: clip, (coupled) weight decay, optimizer."""
  schedule = make_schedule(optim, total_steps)
  parts = []
  if optim.get("grad_clip_norm", 0.0):
    parts.append(optax.clip_by_global_norm(optim.grad_clip_norm))
  # AdamW decouples weight decay itself; for the others it is an L2 term on the gradient.
  if optim.get("weight_decay", 0.0) and optim.name != "adamw":
    parts.append(optax.add_decayed_weights(optim.weight_decay))
  parts.append(_base_optimizer(optim, schedule))
  return optax.chain(*parts)
