"""Applying a jitted function to whole arrays in fixed-size batches: the one loop every
evaluation uses, so each function compiles once (the last batch is padded, its padding dropped).

Every process of a multi-process run calls these with the same host arrays; a
function given replicated inputs computes the same outputs on every process,
and :func:`global_array` splits one batch over the mesh so that each device
computes its rows (the outputs, replicated, are then the whole batch's again).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import numpy as np


def batched_apply(
  fn: Callable[[dict[str, np.ndarray]], Mapping[str, jax.Array]],
  arrays: Mapping[str, np.ndarray],
  batch_size: int,
) -> dict[str, np.ndarray]:
  """``fn(batch) -> dict`` over ``arrays`` (equal lengths) in batches of ``batch_size``.

  Every batch has exactly ``batch_size`` rows (the last one repeats the final
  example), so a jitted ``fn`` compiles once; the outputs are concatenated on
  the host without the padding rows.
  """
  n = len(next(iter(arrays.values())))
  outputs: dict[str, list] = {}
  for start in range(0, n, batch_size):
    idx = np.minimum(np.arange(start, start + batch_size), n - 1)
    result = jax.device_get(fn({k: v[idx] for k, v in arrays.items()}))
    for key, value in result.items():
      outputs.setdefault(key, []).append(np.asarray(value)[: min(batch_size, n - start)])
  return {k: np.concatenate(v) for k, v in outputs.items()}


def global_array(x: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
  """``x`` (the same host array on every process) as one array laid out by ``sharding``:
  each process places only the pieces its own devices hold."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
