"""Name -> model factory registry, so experiments can say ``model.name=vgg16``."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

# Fields of a ``config.model`` that describe the model rather than being a
# factory argument: the registered name, pretrained weights, the compute dtype
# (passed as a jnp.dtype) and ``kwargs`` (read by the weights loader).
MODEL_META_FIELDS = ("name", "weights", "dtype", "kwargs")

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
  """Decorator registering ``factory(**kwargs) -> nn.Module`` under ``name``."""

  def wrap(factory):
    if name in _FACTORIES:
      raise ValueError(f"model {name!r} registered twice")
    _FACTORIES[name] = factory
    return factory

  return wrap


def _import_all():
  # Importing the model modules runs their @register decorators. A module
  # that does not exist (yet) is skipped; an error inside one is raised.
  for module in (
    "vision.models.cnn",
    "vision.models.backbones",
    "vision.models.autoencoder",
    "vision.models.vae",
    "vision.models.gan",
  ):
    try:
      importlib.import_module(module)
    except ModuleNotFoundError as e:
      if e.name != module:
        raise


def available() -> list[str]:
  _import_all()
  return sorted(_FACTORIES)


def create_model(name: str, **kwargs) -> nn.Module:
  """Builds the model registered as ``name`` with the given keyword arguments."""
  _import_all()
  if name not in _FACTORIES:
    raise ValueError(f"unknown model {name!r}; available models: {', '.join(sorted(_FACTORIES))}")
  return _FACTORIES[name](**kwargs)


def model_kwargs(model_config, **extra) -> dict:
  """The factory arguments of a ``config.model``: every field but the meta fields, then
  ``dtype=jnp.dtype(model_config.dtype)`` (float32 if unset), then ``extra``."""
  kwargs = {k: v for k, v in model_config.items() if k not in MODEL_META_FIELDS}
  kwargs["dtype"] = jnp.dtype(model_config.get("dtype", "float32"))
  kwargs.update(extra)
  return kwargs
