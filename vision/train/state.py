"""The train state: one pytree holding everything a step changes."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import optax


class TrainState(flax.struct.PyTreeNode):
  """Parameters, batch statistics, optimizer state and the step counter.

  ``extra`` holds task-specific arrays (e.g. an EMA of the parameters, the
  best validation accuracy) so that checkpoints capture them too.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  batch_stats: Any = flax.struct.field(default_factory=dict)
  extra: Any = flax.struct.field(default_factory=dict)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)

  @classmethod
  def create(cls, *, params, tx, batch_stats=None, extra=None):
    import jax.numpy as jnp

    return cls(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=tx.init(params),
      batch_stats=batch_stats if batch_stats is not None else {},
      extra=extra if extra is not None else {},
      tx=tx,
    )

  def apply_gradients(self, grads, **changes):
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **changes)


def count_params(params) -> int:
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
