"""Train state types and the helpers every step shares.

One pytree holds everything a step changes, so orbax checkpoints it and a
resumed run continues exactly: :class:`TrainState` (one model, one optimizer),
:class:`GANState` (generator and discriminator) and :class:`AAEState` (three
networks, three optimizers). Every optax update in the project goes through
:func:`apply_updates`.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


def apply_updates(tx: optax.GradientTransformation, grads, opt_state, params) -> tuple[Any, Any]:
  """One optax update: ``(params, opt_state)`` after applying ``grads``."""
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def copy_tree(tree):
  """Fresh buffers for every leaf: the state is donated to the step, and one buffer must not
  appear twice in it (e.g. the current and the best parameters of early stopping)."""
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def count_params(params) -> int:
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


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
    return cls(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=tx.init(params),
      batch_stats=batch_stats if batch_stats is not None else {},
      extra=extra if extra is not None else {},
      tx=tx,
    )

  def apply_gradients(self, grads, **changes):
    params, opt_state = apply_updates(self.tx, grads, self.opt_state, self.params)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **changes)


class GANState(flax.struct.PyTreeNode):
  """Both players' parameters, optimizer states and batch statistics, and the average.

  ``params``, ``opt_state`` and ``batch_stats`` are dicts keyed by ``'generator'``
  and ``'discriminator'``; ``ema`` holds the generator's averaged ``params`` and
  ``batch_stats``; ``snapshots`` [S, G, H, W, C] uint8 the fixed-noise grids of
  the averaged generator, slot ``k`` taken after step ``k * snapshot_every``.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  batch_stats: Any
  ema: Any
  snapshots: jax.Array
  g_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)
  d_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)


class AAEState(flax.struct.PyTreeNode):
  """Parameters of the three networks and one optimizer state per update of the AAE step.

  ``params`` = {'encoder', 'decoder', 'discriminator'}; ``ae_opt`` (encoder +
  decoder, reconstruction), ``disc_opt`` (discriminator), ``gen_opt``
  (encoder, regularization).
  """

  step: jax.Array
  params: Any
  ae_opt: Any
  disc_opt: Any
  gen_opt: Any
  ae_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)
  disc_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)
  gen_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)
