"""The gradient of a mean-over-examples loss, computed from batch shards that XLA runs side by side.

A small model's step is a chain of small operations; XLA:CPU splits each one
over the cores, and on few cores much of the step is spent waiting at those
splits. Written as ``k`` independent slices of the batch, the step is ``k``
independent chains that XLA's executor runs concurrently, a core each
(docs/performance.md, change 6, has the measurements). The ``'cpu'`` form
therefore takes two shards by default; ``'portable'`` takes one (the whole
batch, what every other backend wants).

The result is the same function: the mean of per-example losses over the batch
and its gradient, summed shard by shard (only the order of the float additions
differs). That holds only for losses whose examples do not interact: no batch
normalization or other batch statistics, no contrastive terms. Random draws
must be made for the whole batch before sharding, so that the numbers do not
depend on ``k``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from vision.ops.kernels import pick

AUTOMATIC_SHARDS = {"cpu": 2, "portable": 1}


def resolve_shards(shards: int, batch_size: int, kernels: str | None = None) -> int:
  """A config's shard count: ``shards``, where 0 means 2 under ``'cpu'`` and 1 under
  ``'portable'``; 1 when that count does not divide ``batch_size``."""
  if shards < 0:
    raise ValueError(f"grad shards must be >= 0 (0: automatic), got {shards}.")
  if shards == 0:
    shards = AUTOMATIC_SHARDS[pick(kernels)]
  return shards if batch_size % shards == 0 else 1


def mean_value_and_grad(
  per_example: Callable[[Any, Any], tuple[jax.Array, Any]],
  params: Any,
  batch: Any,
  shards: int = 0,
  kernels: str | None = None,
) -> tuple[tuple[jax.Array, Any], Any]:
  """``((mean loss, aux), d mean loss / d params)`` over the batch, from ``shards`` slices.

  ``per_example(params, batch) -> (losses [b], aux)``, where every leaf of
  ``batch`` and of ``aux`` has the examples on axis 0. ``aux`` comes back
  concatenated over the shards, as ``per_example`` returns it for the whole batch.
  ``shards=0`` chooses by :func:`resolve_shards`; a positive count must divide the batch.
  """
  size = jax.tree.leaves(batch)[0].shape[0]
  if shards < 0:
    raise ValueError(f"grad shards must be >= 0 (0: automatic), got {shards}.")
  if shards == 0:
    shards = resolve_shards(0, size, kernels)
  if size % shards:
    raise ValueError(f"{shards} shards do not divide a batch of {size}.")

  def shard_loss(p, part):
    losses, aux = per_example(p, part)
    return jnp.sum(losses) / size, aux

  step = size // shards
  total, auxes, grads = None, [], None
  for i in range(shards):
    part = jax.tree.map(lambda x, i=i: x[i * step : (i + 1) * step], batch)
    (value, aux), grad = jax.value_and_grad(shard_loss, has_aux=True)(params, part)
    total = value if total is None else total + value
    grads = grad if grads is None else jax.tree.map(jnp.add, grads, grad)
    auxes.append(aux)
  aux = auxes[0] if shards == 1 else jax.tree.map(lambda *a: jnp.concatenate(a), *auxes)
  return (total, aux), grads
