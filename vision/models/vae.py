"""Variational autoencoders: a dense VAE and the benchmark's convolutional VAE.

Both encoders output the mean and the **log-variance** of a diagonal Gaussian
posterior q(z|x) (one ``Dense(2 * latent_dim)`` split in two); both decoders
output Bernoulli **logits** of p(x|z). Sampling, the KL term and the
likelihood live in :mod:`vision.losses`, with one meaning of ``logvar``.

* :class:`DenseVAE` -- the dense 784-512-latent / latent-512-784 network.
* :class:`ConvVAE` -- the ``vae`` benchmark workload: encoder
  Conv(32, 3x3, s2)-ReLU-Conv(64, 3x3, s2)-ReLU-Dense(2*latent); decoder
  Dense(7*7*32)-ReLU-ConvT(64, 3x3, s2)-ReLU-ConvT(32, 3x3, s2)-ReLU-
  ConvT(1, 3x3, s1) logits. Its layers are :mod:`vision.models.layers`' ``Conv``
  and ``ConvTranspose`` (same parameters as Flax's, computed through :mod:`vision.ops`).

Methods: ``encode(x) -> (mean, logvar)``, ``decode(z) -> logits`` and
``__call__(x, noise=None) -> (logits, {'mean', 'logvar', 'z'})``, which samples
z with the given N(0, I) ``noise`` or else the ``'latent'`` rng stream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vision import losses
from vision.errors import ConfigError
from vision.models.layers import Conv, ConvTranspose
from vision.models.registry import register


class DenseEncoder(nn.Module):
  hidden: Sequence[int] = (512,)
  latent_dim: int = 2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images):
    x = images.reshape(images.shape[0], -1).astype(self.dtype)  # [B, H * W * C]
    for i, units in enumerate(self.hidden):
      x = nn.relu(nn.Dense(units, dtype=self.dtype, name=f"dense{i + 1}")(x))
    stats = nn.Dense(2 * self.latent_dim, dtype=self.dtype, name="posterior")(x)
    mean, logvar = jnp.split(stats.astype(jnp.float32), 2, axis=-1)
    return mean, logvar


class DenseDecoder(nn.Module):
  output_shape: Sequence[int] = (28, 28, 1)
  hidden: Sequence[int] = (512,)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z):
    x = z.astype(self.dtype)
    for i, units in enumerate(self.hidden):
      x = nn.relu(nn.Dense(units, dtype=self.dtype, name=f"dense{i + 1}")(x))
    x = nn.Dense(math.prod(self.output_shape), dtype=self.dtype, name="logits")(x)
    return x.reshape(z.shape[0], *self.output_shape).astype(jnp.float32)  # [B, H, W, C]


class ConvEncoder(nn.Module):
  widths: Sequence[int] = (32, 64)
  latent_dim: int = 2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images):
    x = images.astype(self.dtype)
    for i, width in enumerate(self.widths):
      x = nn.relu(Conv(width, (3, 3), strides=(2, 2), dtype=self.dtype, name=f"conv{i + 1}")(x))
    x = x.reshape(x.shape[0], -1)  # [B, H/4 * W/4 * 64]
    stats = nn.Dense(2 * self.latent_dim, dtype=self.dtype, name="posterior")(x)
    mean, logvar = jnp.split(stats.astype(jnp.float32), 2, axis=-1)
    return mean, logvar


class ConvDecoder(nn.Module):
  output_shape: Sequence[int] = (28, 28, 1)
  widths: Sequence[int] = (64, 32)
  projection_channels: int = 32
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z):
    height, width, channels = self.output_shape
    factor = 2 ** len(self.widths)
    if height % factor or width % factor:
      raise ConfigError(
        f"--config.data.image_size: the conv VAE with {len(self.widths)} stride-2 layers "
        f"needs image sides divisible by {factor}, got {height}x{width}; use a size such as "
        f"{(height // factor + 1) * factor}x{(width // factor + 1) * factor}."
      )
    start = (height // factor, width // factor, self.projection_channels)
    x = nn.Dense(math.prod(start), dtype=self.dtype, name="projection")(z.astype(self.dtype))
    x = nn.relu(x).reshape(z.shape[0], *start)  # [B, H/4, W/4, 32]
    for i, features in enumerate(self.widths):
      x = nn.relu(
        ConvTranspose(features, (3, 3), (2, 2), dtype=self.dtype, name=f"deconv{i + 1}")(x)
      )
    x = ConvTranspose(channels, (3, 3), (1, 1), dtype=self.dtype, name="logits")(x)
    return x.astype(jnp.float32)  # [B, H, W, C]


class VAE(nn.Module):
  """An encoder producing (mean, logvar) and a decoder producing logits."""

  encoder: nn.Module
  decoder: nn.Module

  def encode(self, images, *, train: bool = False):
    return self.encoder(images)

  def decode(self, z, *, train: bool = False):
    return self.decoder(z)

  def __call__(self, images, *, train: bool = False, noise=None):
    """``noise`` [B, latent] ~ N(0, I): the reparameterization's draw; if None it is
    drawn from the ``'latent'`` rng stream."""
    mean, logvar = self.encoder(images)
    rng = self.make_rng("latent") if noise is None else None
    z = losses.reparameterize(rng, mean, logvar, noise)
    return self.decoder(z), {"mean": mean, "logvar": logvar, "z": z}


@register("dense_vae")
def dense_vae(
  output_shape=(28, 28, 1), hidden=(512,), latent_dim: int = 2, dtype=jnp.float32
) -> VAE:
  return VAE(
    DenseEncoder(tuple(hidden), latent_dim, dtype=dtype),
    DenseDecoder(tuple(output_shape), tuple(hidden)[::-1], dtype=dtype),
  )


@register("conv_vae")
def conv_vae(
  output_shape=(28, 28, 1),
  latent_dim: int = 2,
  encoder_widths=(32, 64),
  decoder_widths=(64, 32),
  projection_channels: int = 32,
  dtype=jnp.float32,
) -> VAE:
  return VAE(
    ConvEncoder(tuple(encoder_widths), latent_dim, dtype=dtype),
    ConvDecoder(tuple(output_shape), tuple(decoder_widths), projection_channels, dtype=dtype),
  )
