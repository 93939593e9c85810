"""Frozen networks as functions of the image: what every optimizer in :mod:`vision.optimize` takes.

Images are in pixel space ``[0, 1]``; the network's own preprocessing (ImageNet
mean/std, the Lite ``(255x - 127) / 128`` ...) happens inside the model, so a
perturbation budget ``eps = 8/255`` means 8 grey levels of the 8-bit picture.
Networks are frozen: their variables are an argument wrapped in
``stop_gradient`` and they run with ``train=False`` (batch norm uses its
running statistics and nothing is updated).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax

LogitsFn = Callable[[dict, jax.Array], jax.Array]
FeaturesFn = Callable[[dict, jax.Array], tuple[jax.Array, dict]]


@functools.cache
def logits_fn(model) -> LogitsFn:
  """``f(variables, images) -> logits`` of a ``(logits, features)`` model, in inference mode.

  Cached per module so the same callable (a static argument of the jitted
  optimizers) is reused and nothing recompiles.
  """

  def fn(variables, images):
    return model.apply(jax.lax.stop_gradient(variables), images, train=False)[0]

  return fn


@functools.cache
def features_fn(model) -> FeaturesFn:
  """``f(variables, images) -> (logits, features)`` in inference mode, variables frozen."""

  def fn(variables, images):
    return model.apply(jax.lax.stop_gradient(variables), images, train=False)

  return fn
