"""Keras ``keras.applications`` weight files (.h5 / .weights.h5) -> Flax variables.

Two file layouts exist:

* legacy HDF5 (``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` as published
  for keras.applications, or ``model.save('x.h5')``): groups named by layer
  (``block1_conv1``) with ``weight_names`` attributes;
* Keras 3 ``model.save_weights('x.weights.h5')``: groups named by layer
  *class* and creation order (``layers/conv2d_12/vars/0``), no layer names.

Both are mapped through the same table, built from the Flax model's
configuration, of ``(keras layer name, keras class, flax path, kind)`` in
Keras' layer order: legacy files match on the name, Keras 3 files on the
n-th layer of each class. Keras kernels are already HWIO; depthwise
``[kh, kw, C, 1]`` -> ``[kh, kw, 1, C]``; BN gamma/beta/moving stats ->
scale/bias and ``batch_stats``.
"""

from __future__ import annotations

import os
import re

import numpy as np

from vision.weights.common import WeightsError, add_bn, add_conv, add_dense

# Keras 3 names weight groups by the snake-cased class.
CONV, DEPTHWISE, BN, DENSE = "conv2d", "depthwise_conv2d", "batch_normalization", "dense"
_KIND = {CONV: "conv", DEPTHWISE: "depthwise", BN: "bn", DENSE: "dense"}


def keras_layer_table(family: str, model) -> list[tuple[str, str, str]]:
  """``(keras name, keras class, flax path)`` for every weighted layer, in Keras' order."""
  table: list[tuple[str, str, str]] = []
  if family == "vgg":
    table += [(n, CONV, n) for n in model.conv_names()]
    table += [("fc1", DENSE, "fc1"), ("fc2", DENSE, "fc2"), ("predictions", DENSE, "head")]
  elif family == "resnet":
    if not model.bottleneck:
      raise WeightsError("Keras weights exist only for ResNet-50 (bottleneck blocks)")
    table += [("conv1_conv", CONV, "stem_conv"), ("conv1_bn", BN, "stem_bn")]
    for s, n in enumerate(model.stage_sizes):
      for b in range(1, n + 1):
        keras = f"conv{s + 2}_block{b}"
        flax = f"stage{s + 1}_block{b}"

        def unit(i, keras=keras, flax=flax):
          # Keras unit 0 is the projection shortcut; units 1..3 the residual branch.
          conv, bn = ("proj_conv", "proj_bn") if i == 0 else (f"conv{i}", f"bn{i}")
          return [
            (f"{keras}_{i}_conv", CONV, f"{flax}/{conv}"),
            (f"{keras}_{i}_bn", BN, f"{flax}/{bn}"),
          ]

        u1, u2, u3 = unit(1), unit(2), unit(3)
        if b == 1:
          # Keras creates the shortcut conv first but orders layers by graph
          # traversal: 1_conv, 1_bn, 2_conv, 2_bn, 0_conv, 3_conv, 0_bn, 3_bn.
          u0 = unit(0)
          table += u1 + u2 + [u0[0], u3[0], u0[1], u3[1]]
        else:
          table += u1 + u2 + u3
    table.append(("predictions", DENSE, "head"))
  elif family == "mobilenet_v2":
    table += [("Conv1", CONV, "stem_conv"), ("bn_Conv1", BN, "stem_bn")]
    num_blocks = sum(stage[-1] for stage in model.stages)
    for i in range(num_blocks):
      prefix = "expanded_conv" if i == 0 else f"block_{i}"
      if i > 0:
        table += [
          (f"{prefix}_expand", CONV, f"block_{i}/expand_conv"),
          (f"{prefix}_expand_BN", BN, f"block_{i}/expand_bn"),
        ]
      table += [
        (f"{prefix}_depthwise", DEPTHWISE, f"block_{i}/depthwise_conv"),
        (f"{prefix}_depthwise_BN", BN, f"block_{i}/depthwise_bn"),
        (f"{prefix}_project", CONV, f"block_{i}/project_conv"),
        (f"{prefix}_project_BN", BN, f"block_{i}/project_bn"),
      ]
    table += [
      ("Conv_1", CONV, "head_conv"),
      ("Conv_1_bn", BN, "head_bn"),
      ("predictions", DENSE, "head"),
    ]
  else:
    raise WeightsError(f"no Keras weights for family {family!r}")
  return table


def read_keras_h5(path: str | os.PathLike) -> tuple[str, dict]:
  """Reads a Keras weight file.

  Returns ``('named', {layer name: [arrays]})`` for legacy files or
  ``('ordered', {class: [[arrays] per layer in creation order]})`` for Keras 3.
  """
  import h5py

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no such Keras weights file: {path}")
  if not h5py.is_hdf5(path):
    raise WeightsError(f"{path} is not a Keras weights file (not HDF5)")
  with h5py.File(path, "r") as f:
    if "layers" in f and isinstance(f["layers"], h5py.Group) and "layer_names" not in f.attrs:
      ordered: dict[str, list[tuple[int, list[np.ndarray]]]] = {}
      _collect_keras3(f["layers"], ordered)
      return "ordered", {
        c: [a for _, a in sorted(v, key=lambda t: t[0])] for c, v in ordered.items()
      }
    root = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in root.attrs:
      raise WeightsError(f"{path} is HDF5 but not a Keras weights file (no layer_names/layers)")
    named = {}
    for name in root.attrs["layer_names"]:
      name = name.decode() if isinstance(name, bytes) else str(name)
      group = root[name]
      weight_names = [
        w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs.get("weight_names", [])
      ]
      if weight_names:
        named[name] = _ordered_by_role(weight_names, [np.asarray(group[w]) for w in weight_names])
    return "named", named


def _ordered_by_role(names, arrays):
  """Legacy files name each weight (``bn/gamma:0``): order BN weights gamma, beta, mean, var."""
  roles = ["gamma", "beta", "moving_mean", "moving_variance"]
  found = {}
  for n, a in zip(names, arrays):
    leaf = n.split("/")[-1].split(":")[0]
    if leaf in roles:
      found[leaf] = a
  if len(found) == len(arrays) and set(found) >= {"moving_mean", "moving_variance"}:
    return [found[r] for r in roles if r in found]
  return arrays


def _collect_keras3(group, ordered):
  for key, sub in group.items():
    if "layers" in sub:  # a nested model
      _collect_keras3(sub["layers"], ordered)
    if "vars" not in sub or not len(sub["vars"]):
      continue
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", key)
    cls, index = m[1], int(m[2] or 0)
    arrays = [np.asarray(sub["vars"][k]) for k in sorted(sub["vars"], key=int)]
    ordered.setdefault(cls, []).append((index, arrays))


def convert_keras_file(family: str, path: str | os.PathLike, model) -> dict[str, np.ndarray]:
  """Converts the Keras weight file at ``path`` for ``model`` (a Flax module of ``family``)."""
  layout, data = read_keras_h5(path)
  table = keras_layer_table(family, model)
  by_layer: dict[str, tuple[str, str, list[np.ndarray]]] = {}
  problems = []
  if layout == "named":
    known = {name: (cls, flax) for name, cls, flax in table}
    unexpected = sorted(set(data) - set(known))
    if unexpected:
      problems.append(f"unexpected layers ({len(unexpected)}): {', '.join(unexpected[:40])}")
    for name, arrays in data.items():
      if name in known:
        by_layer[name] = (*known[name], arrays)
  else:
    per_class: dict[str, list[tuple[str, str]]] = {}
    for name, cls, flax in table:
      per_class.setdefault(cls, []).append((name, flax))
    for cls, layers in data.items():
      expected = per_class.get(cls, [])
      if cls not in _KIND or len(layers) > len(expected):
        problems.append(
          f"{len(layers)} weighted '{cls}' layers, expected {len(expected)} for this {family} model"
        )
        continue
      for (name, flax), arrays in zip(expected, layers):
        by_layer[name] = (cls, flax, arrays)
  out: dict[str, np.ndarray] = {}
  for name, (cls, flax, arrays) in by_layer.items():
    try:
      _convert_layer(out, flax, _KIND[cls], arrays)
    except (ValueError, IndexError) as e:
      problems.append(f"{name}: {e}")
  if problems:
    raise WeightsError(f"{path} does not match a Keras {family} model:\n  " + "\n  ".join(problems))
  return out


def _convert_layer(out, path, kind, arrays):
  if kind == "conv":
    if arrays[0].ndim != 4:
      raise ValueError(f"kernel of shape {arrays[0].shape} is not a conv kernel")
    add_conv(out, path, arrays[0], arrays[1] if len(arrays) > 1 else None)
  elif kind == "depthwise":
    k = arrays[0]
    if k.ndim != 4 or k.shape[3] != 1:
      raise ValueError(f"kernel of shape {k.shape} is not a depthwise kernel")
    add_conv(out, path, k.transpose(0, 1, 3, 2), arrays[1] if len(arrays) > 1 else None)
  elif kind == "dense":
    if arrays[0].ndim != 2:
      raise ValueError(f"kernel of shape {arrays[0].shape} is not a dense kernel")
    add_dense(out, path, arrays[0], arrays[1] if len(arrays) > 1 else None)
  elif kind == "bn":
    if len(arrays) != 4:
      raise ValueError(f"batch norm with {len(arrays)} weights (expected 4)")
    add_bn(out, path, *arrays)
