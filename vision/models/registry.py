"""Name -> model factory registry, so experiments can say ``model.name=vgg16``."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

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
  import importlib

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
