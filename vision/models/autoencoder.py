"""Deterministic autoencoders: the classic conv autoencoder, a super-resolution net, the AAE.

* :class:`ConvAutoencoder`: the classic small network. Encoder Conv16-Pool,
  Conv8-Pool, Conv8-Pool (pooling with SAME padding, 28 -> 14 -> 7 -> 4, so a
  4x4x8 = 128-value code), optionally a dense bottleneck of ``latent_dim``
  values (e.g. a 2-D latent to plot); mirrored decoder of
  Conv-Upsample blocks and a final 3x3 conv to **logits** (the loss applies the
  sigmoid). Smaller inputs (14x14 or 7x7, for super-resolution) pool only until
  the code is 4x4, and the decoder upsamples to ``output_shape``.
* :class:`SuperResolutionNet`: an ESPCN-style network for x2/x4 upscaling:
  convolutions at low resolution, learned x2 upsampling layers, and a
  zero-initialized output that is added to the bicubic upsampling (in logit
  space), so training starts exactly at the bicubic baseline and learns the
  residual detail.
* :class:`AdversarialAutoencoder`: a dense autoencoder whose codes are pushed
  towards an N(0, I) prior by a latent discriminator (Makhzani et al. 2015).

Every model takes images in [0, 1] and returns ``(logits, features)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision.models.layers import ConvTranspose, max_pool_2x2, upsample_nearest
from vision.models.registry import register


def halvings(size: int, min_size: int) -> list[int]:
  """The sizes a spatial axis passes through when halved (ceil) while above ``min_size``."""
  sizes = [size]
  while sizes[-1] > min_size:
    sizes.append(math.ceil(sizes[-1] / 2))
  return sizes


class ConvEncoder(nn.Module):
  """Conv(3x3, ReLU) blocks, each followed by 2x2 pooling while the map is larger than 4x4."""

  widths: Sequence[int] = (16, 8, 8)
  min_size: int = 4
  latent_dim: int = 0  # >0: a dense bottleneck after the conv part
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    del train
    features = {}
    x = images.astype(self.dtype)
    for i, width in enumerate(self.widths):
      x = nn.relu(nn.Conv(width, (3, 3), dtype=self.dtype, name=f"conv{i + 1}")(x))
      if max(x.shape[1:3]) > self.min_size:
        x = max_pool_2x2(x, "SAME")  # as Keras pools: 7 -> 4
      features[f"block{i + 1}"] = x
    features["code"] = x
    if self.latent_dim:
      x = x.reshape(x.shape[0], -1)  # [B, h * w * C]
      x = nn.Dense(self.latent_dim, dtype=self.dtype, name="latent")(x)
      features["latent"] = x
    return x, features


class ConvDecoder(nn.Module):
  """Mirror of :class:`ConvEncoder`: Conv(3x3, ReLU) then x2 upsampling, cropped to size.

  ``upsample='nearest'`` is Keras' ``UpSampling2D``; ``'learned'`` uses a
  stride-2 transposed convolution.
  """

  output_shape: Sequence[int] = (28, 28, 1)
  widths: Sequence[int] = (8, 8, 16)
  code_shape: Sequence[int] = (4, 4, 8)  # used when decoding a dense latent
  min_size: int = 4
  upsample: str = "nearest"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, code, *, train: bool = False):
    del train
    height, width, channels = self.output_shape
    x = code.astype(self.dtype)
    if x.ndim == 2:  # a dense latent: project back to the conv code
      x = nn.relu(nn.Dense(math.prod(self.code_shape), dtype=self.dtype, name="latent")(x))
      x = x.reshape(x.shape[0], *self.code_shape)  # [B, h, w, C]
    # The sizes to pass through on the way up, e.g. 28 -> [4, 7, 14, 28].
    heights = halvings(height, self.min_size)[::-1]
    widths = halvings(width, self.min_size)[::-1]
    steps = max(len(heights), len(widths)) - 1
    heights = [heights[0]] * (steps + 1 - len(heights)) + heights
    widths = [widths[0]] * (steps + 1 - len(widths)) + widths
    for i in range(steps):
      features = self.widths[min(i, len(self.widths) - 1)]
      x = nn.relu(nn.Conv(features, (3, 3), dtype=self.dtype, name=f"conv{i + 1}")(x))
      if self.upsample == "nearest":
        x = upsample_nearest(x, 2)
      elif self.upsample == "learned":
        x = nn.relu(ConvTranspose(features, (3, 3), (2, 2), dtype=self.dtype, name=f"up{i + 1}")(x))
      else:
        raise ValueError(f"unknown upsample {self.upsample!r}; choose 'nearest' or 'learned'.")
      x = x[:, : heights[i + 1], : widths[i + 1]]  # e.g. 8 -> 7 on the way to 28
    return nn.Conv(channels, (3, 3), dtype=self.dtype, name="logits")(x).astype(jnp.float32)


class ConvAutoencoder(nn.Module):
  """The classic convolutional autoencoder (see the module docstring)."""

  output_shape: Sequence[int] = (28, 28, 1)
  encoder_widths: Sequence[int] = (16, 8, 8)
  decoder_widths: Sequence[int] = (8, 8, 16)
  latent_dim: int = 0
  input_size: int = 0  # 0: same as the output (plain / denoising); 14 or 7: super-resolution
  upsample: str = "nearest"
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    in_h = self.input_size or self.output_shape[0]
    in_w = self.input_size or self.output_shape[1]
    code_hw = (halvings(in_h, 4)[-1], halvings(in_w, 4)[-1])
    self.encoder = ConvEncoder(self.encoder_widths, latent_dim=self.latent_dim, dtype=self.dtype)
    self.decoder = ConvDecoder(
      self.output_shape,
      self.decoder_widths,
      code_shape=(*code_hw, self.encoder_widths[-1]),
      upsample=self.upsample,
      dtype=self.dtype,
    )

  def encode(self, images, *, train: bool = False):
    return self.encoder(images, train=train)[0]

  def decode(self, code, *, train: bool = False):
    return self.decoder(code, train=train)

  def __call__(self, images, *, train: bool = False):
    code, features = self.encoder(images, train=train)
    return self.decoder(code, train=train), features


class SuperResolutionNet(nn.Module):
  """ESPCN-style x``scale`` upscaler with a bicubic skip (see the module docstring)."""

  scale: int = 2
  width: int = 32
  depth: int = 3
  channels: int = 1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, low_res, *, train: bool = False):
    del train
    if self.scale < 2 or self.scale & (self.scale - 1):
      raise ValueError(f"scale must be a power of two >= 2, not {self.scale}.")
    features = {}
    x = low_res.astype(self.dtype) * 2.0 - 1.0  # centred for the first layer
    x = nn.relu(nn.Conv(self.width, (5, 5), dtype=self.dtype, name="conv_in")(x))
    for i in range(self.depth - 1):
      x = nn.relu(nn.Conv(self.width, (3, 3), dtype=self.dtype, name=f"conv{i + 1}")(x))
    features["low_res_features"] = x
    for i in range(int(math.log2(self.scale))):
      x = nn.relu(ConvTranspose(self.width, (3, 3), (2, 2), dtype=self.dtype, name=f"up{i + 1}")(x))
    residual = nn.Conv(
      self.channels, (3, 3), kernel_init=nn.initializers.zeros, dtype=self.dtype, name="residual"
    )(x).astype(jnp.float32)
    b, h, w, c = low_res.shape
    bicubic = jax.image.resize(
      low_res.astype(jnp.float32), (b, h * self.scale, w * self.scale, c), "bicubic"
    )
    bicubic = jnp.clip(bicubic, 1e-3, 1.0 - 1e-3)
    features["bicubic"] = bicubic
    return jnp.log(bicubic) - jnp.log1p(-bicubic) + residual, features  # logits


# -- adversarial autoencoder ------------------------------------------------------------------
class MLP(nn.Module):
  """Dense-ReLU layers, then a linear layer of ``out`` units."""

  hidden: Sequence[int]
  out: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = x.astype(self.dtype)
    for i, units in enumerate(self.hidden):
      x = nn.relu(nn.Dense(units, dtype=self.dtype, name=f"dense{i + 1}")(x))
    return nn.Dense(self.out, dtype=self.dtype, name="out")(x).astype(jnp.float32)


class AdversarialAutoencoder(nn.Module):
  """Dense encoder -> ``latent_dim`` code -> dense decoder (logits); a latent discriminator.

  The discriminator ends in **one** logit: its last linear layer is part of
  the forward pass. Parameters live under ``encoder``, ``decoder`` and
  ``discriminator`` so a training step can update each with its own optimizer.
  """

  output_shape: Sequence[int] = (28, 28, 1)
  hidden: Sequence[int] = (512, 512)
  latent_dim: int = 8
  discriminator_hidden: Sequence[int] = (256, 256)
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.encoder = MLP(self.hidden, self.latent_dim, dtype=self.dtype)
    self.decoder = MLP(tuple(self.hidden)[::-1], math.prod(self.output_shape), dtype=self.dtype)
    self.discriminator = MLP(self.discriminator_hidden, 1, dtype=self.dtype)

  def encode(self, images, *, train: bool = False):
    return self.encoder(images.reshape(images.shape[0], -1))  # [B, latent]

  def decode(self, z, *, train: bool = False):
    return self.decoder(z).reshape(z.shape[0], *self.output_shape)  # [B, H, W, C] logits

  def discriminate(self, z):
    return self.discriminator(z)[:, 0]  # [B] logits of "drawn from the prior"

  def __call__(self, images, *, train: bool = False):
    z = self.encode(images, train=train)
    return self.decode(z, train=train), {"latent": z, "prior_logits": self.discriminate(z)}


@register("conv_autoencoder")
def conv_autoencoder(**kwargs) -> ConvAutoencoder:
  return ConvAutoencoder(**kwargs)


@register("superres_net")
def superres_net(**kwargs) -> SuperResolutionNet:
  return SuperResolutionNet(**kwargs)


@register("aae")
def aae(**kwargs) -> AdversarialAutoencoder:
  return AdversarialAutoencoder(**kwargs)
