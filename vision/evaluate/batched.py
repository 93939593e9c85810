"""Applying a jitted function to whole arrays in fixed-size batches: the one loop every
evaluation uses, so each function compiles once (the last batch is padded, its padding dropped)."""

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
