"""Pieces shared by the PyTorch and Keras converters: errors, layer rules, merging.

Converted weights are a flat dict ``{'params/a/b/kernel': array,
'batch_stats/a/b/mean': array}``. ``merge_variables`` puts them into freshly
initialized variables and refuses, in one error naming every key, anything
missing, unexpected or mis-shaped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import traverse_util

from vision.errors import WeightsError  # noqa: F401 - raised here, defined with the others


def _list(keys, limit=60) -> str:
  keys = sorted(keys)
  shown = ", ".join(keys[:limit])
  return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def merge_variables(
  init_variables: dict[str, Any],
  loaded: dict[str, np.ndarray],
  *,
  fresh: tuple[str, ...] = (),
  ignore: tuple[str, ...] = (),
  source: str = "weights",
) -> dict[str, Any]:
  """Replaces every leaf of ``init_variables`` by ``loaded[path]``.

  Args:
    init_variables: freshly initialized ``{'params': ..., 'batch_stats': ...}``.
    loaded: flat converted arrays keyed ``'collection/module/.../name'``.
    fresh: top-level param prefixes to keep as initialized (a new head).
    ignore: prefixes of loaded keys to drop silently (a head the model lacks).
    source: name of the checkpoint for error messages.

  Raises:
    WeightsError listing all missing, unexpected and mis-shaped keys.
  """

  def skipped(key, prefixes):
    return any(key == p or key.startswith(p + "/") for p in prefixes)

  flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(dict(init_variables)).items()}
  loaded = {k: v for k, v in loaded.items() if not skipped(k, ignore + fresh)}
  wanted = {k for k in flat if not skipped(k, fresh)}
  missing = wanted - set(loaded)
  unexpected = set(loaded) - set(flat)
  misshaped = [
    f"{k}: model {tuple(flat[k].shape)} vs checkpoint {tuple(loaded[k].shape)}"
    for k in sorted(wanted & set(loaded))
    if tuple(flat[k].shape) != loaded[k].shape
  ]
  if missing or unexpected or misshaped:
    parts = [f"cannot load {source} into the model:"]
    if missing:
      parts.append(f"  missing in checkpoint ({len(missing)}): {_list(missing)}")
    if unexpected:
      parts.append(f"  unexpected in checkpoint ({len(unexpected)}): {_list(unexpected)}")
    if misshaped:
      parts.append(f"  shape mismatch ({len(misshaped)}): {'; '.join(misshaped[:30])}")
    raise WeightsError("\n".join(parts))
  merged = {}
  for k, v in flat.items():
    merged[tuple(k.split("/"))] = v if skipped(k, fresh) else np.asarray(loaded[k], dtype=v.dtype)
  return traverse_util.unflatten_dict(merged)


def add_conv(out: dict, path: str, kernel_hwio: np.ndarray, bias=None) -> None:
  out[f"params/{path}/kernel"] = np.ascontiguousarray(kernel_hwio, dtype=np.float32)
  if bias is not None:
    out[f"params/{path}/bias"] = np.asarray(bias, dtype=np.float32)


def add_dense(out: dict, path: str, kernel_in_out: np.ndarray, bias=None) -> None:
  add_conv(out, path, kernel_in_out, bias)


def add_bn(out: dict, path: str, scale, bias, mean, var) -> None:
  out[f"params/{path}/scale"] = np.asarray(scale, dtype=np.float32)
  out[f"params/{path}/bias"] = np.asarray(bias, dtype=np.float32)
  out[f"batch_stats/{path}/mean"] = np.asarray(mean, dtype=np.float32)
  out[f"batch_stats/{path}/var"] = np.asarray(var, dtype=np.float32)
