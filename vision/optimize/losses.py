"""Per-image losses of image-space optimization: total variation and cross-entropy, ``[B]``."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def total_variation(images: jax.Array, reduction: str = "sum") -> jax.Array:
  """Anisotropic L1 total variation per image of ``[B, H, W, C]``: ``[B]``.

  ``'sum'`` is ``tf.image.total_variation``: the sum over pixels and channels of
  the absolute differences between vertical and horizontal neighbours.
  ``'mean'`` divides each of the two sums by its number of terms.
  """
  dy = jnp.abs(images[:, 1:] - images[:, :-1])
  dx = jnp.abs(images[:, :, 1:] - images[:, :, :-1])
  if reduction == "sum":
    return dy.sum(axis=(1, 2, 3)) + dx.sum(axis=(1, 2, 3))
  if reduction == "mean":
    return dy.mean(axis=(1, 2, 3)) + dx.mean(axis=(1, 2, 3))
  raise ValueError(f"unknown reduction {reduction!r}; expected 'sum' or 'mean'.")


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example cross-entropy ``[B]`` with integer labels."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
