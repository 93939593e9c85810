"""Image-restoration metrics: PSNR against clean images, and the baselines to beat."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def psnr(images: jax.Array, targets: jax.Array, max_value: float = 1.0) -> jax.Array:
  """Peak signal-to-noise ratio per image [B] in dB, 10 log10(max^2 / MSE).

  Averaged over images by the callers (the mean of per-image PSNR, the usual
  convention in restoration papers). A perfect image is capped at 100 dB.
  """
  diff = (images.astype(jnp.float32) - targets.astype(jnp.float32)).reshape(images.shape[0], -1)
  mse = jnp.mean(jnp.square(diff), axis=-1)
  return 10.0 * jnp.log10(max_value**2 / jnp.maximum(mse, 1e-10))


def bicubic_upsample(images: jax.Array, scale: int) -> jax.Array:
  """``jax.image.resize(method='bicubic')`` by ``scale``, clipped to [0, 1]: the SR baseline."""
  b, h, w, c = images.shape
  up = jax.image.resize(images.astype(jnp.float32), (b, h * scale, w * scale, c), "bicubic")
  return jnp.clip(up, 0.0, 1.0)


def average_downsample(images: jax.Array, scale: int) -> jax.Array:
  """Box-filter downsampling (Keras ``AveragePooling2D``): [B, H, W, C] -> [B, H/s, W/s, C]."""
  b, h, w, c = images.shape
  if h % scale or w % scale:
    raise ValueError(f"image size {h}x{w} is not divisible by the scale {scale}.")
  x = images.reshape(b, h // scale, scale, w // scale, scale, c)  # [B, H/s, s, W/s, s, C]
  return x.mean(axis=(2, 4))
