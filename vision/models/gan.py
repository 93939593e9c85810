"""Generators and discriminators of the classic GANs, and the pairs the GAN task trains.

Every generator maps a latent ``z`` [B, latent_dim] (and, if conditional,
integer labels [B]) to images [B, H, W, C] in **[-1, 1]** (tanh); every
discriminator maps such images to **logits** [B] (the sigmoid lives in the
loss). Both return ``(output, features)``.

* :class:`DenseGenerator` / :class:`DenseDiscriminator`: the
  fully-connected GAN, 100-256-512-1024-784 with batch norm, and 784-512-256-1.
* :class:`DCGANGenerator` / :class:`DCGANDiscriminator`: exactly the ``dcgan``
  benchmark workload (the TensorFlow DCGAN tutorial): Dense to 7x7x256,
  ConvT 128 (s1), ConvT 64 (s2), ConvT C (s2), 5x5 kernels; a two-conv
  discriminator with dropout. With ``num_classes`` set they become the
  class-conditional DCGAN: a label embedding is concatenated to ``z``, and the
  discriminator gets a learned label map as an extra input channel plus a
  projection term ``<embed(y), h>`` on its last features (Miyato & Koyama 2018).
* :class:`ConvTGenerator` / :class:`StridedDiscriminator`: a PyTorch-style
  DCGAN, four transposed convolutions 1 -> 3 -> 7 -> 14 -> 28 and four strided
  convolutions with batch norm back down to one logit.

The SAME transposed convolutions, the DCGAN discriminator's convolutions and
its dropout are :mod:`vision.models.layers`' ``ConvTranspose``, ``Conv`` and
``Dropout``: Flax's parameters and masks, computed through :mod:`vision.ops`.
Conv GANs use the DCGAN paper's N(0, 0.02) initialization (batch-norm scales
N(1, 0.02)). The factories registered here return a :class:`GAN` pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision.errors import ConfigError
from vision.models.layers import Conv, ConvTranspose, Dropout
from vision.models.registry import register

DCGAN_INIT = nn.initializers.normal(0.02)


def dcgan_scale_init(key, shape, dtype=jnp.float32):
  """Batch-norm scale ~ N(1, 0.02), as in the DCGAN paper's PyTorch reference."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


class GAN(NamedTuple):
  """A generator and a discriminator; each has its own variables and optimizer."""

  generator: nn.Module
  discriminator: nn.Module
  latent_dim: int
  conditional: bool


def _batch_norm(train: bool, momentum: float, dcgan_init: bool, name: str, dtype):
  return nn.BatchNorm(
    use_running_average=not train,
    momentum=momentum,
    dtype=dtype,
    scale_init=dcgan_scale_init if dcgan_init else nn.initializers.ones,
    name=name,
  )


class DenseGenerator(nn.Module):
  """z -> Dense(256) -> BN -> LReLU(0.2) -> 512 -> 1024 -> Dense(H*W*C) -> tanh."""

  image_shape: Sequence[int] = (28, 28, 1)
  hidden: Sequence[int] = (256, 512, 1024)
  bn_momentum: float = 0.8  # = PyTorch's BatchNorm1d(momentum=0.2)
  negative_slope: float = 0.2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z, labels=None, *, train: bool = False):
    del labels
    features = {}
    x = z.astype(self.dtype)
    for i, width in enumerate(self.hidden):
      x = nn.Dense(width, dtype=self.dtype, name=f"dense{i + 1}")(x)
      x = _batch_norm(train, self.bn_momentum, False, f"bn{i + 1}", self.dtype)(x)
      x = nn.leaky_relu(x, self.negative_slope)
      features[f"dense{i + 1}"] = x
    h, w, c = self.image_shape
    x = nn.Dense(h * w * c, dtype=self.dtype, name="out")(x)
    images = jnp.tanh(x.astype(jnp.float32)).reshape(-1, h, w, c)  # [B, H, W, C]
    return images, features


class DenseDiscriminator(nn.Module):
  """Flatten -> Dense(512) -> LReLU(0.2) -> Dense(256) -> LReLU -> Dense(1) logits."""

  hidden: Sequence[int] = (512, 256)
  negative_slope: float = 0.2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, labels=None, *, train: bool = False):
    del labels, train
    features = {}
    x = images.reshape(images.shape[0], -1).astype(self.dtype)  # [B, H * W * C]
    for i, width in enumerate(self.hidden):
      x = nn.leaky_relu(
        nn.Dense(width, dtype=self.dtype, name=f"dense{i + 1}")(x), self.negative_slope
      )
      features[f"dense{i + 1}"] = x
    logits = nn.Dense(1, dtype=self.dtype, name="out")(x)
    return logits[:, 0].astype(jnp.float32), features


class DCGANGenerator(nn.Module):
  """The ``dcgan`` workload's generator; conditional when ``num_classes`` > 0.

  Dense(z -> (H/4)(W/4)*256, no bias) -> BN -> LReLU(0.3) -> ConvT(128, 5x5, s1) -> BN ->
  LReLU -> ConvT(64, 5x5, s2) -> BN -> LReLU -> ConvT(C, 5x5, s2) -> tanh.
  """

  image_shape: Sequence[int] = (28, 28, 1)
  widths: Sequence[int] = (256, 128, 64)
  kernel_size: int = 5
  num_classes: int = 0
  label_dim: int = 32
  bn_momentum: float = 0.9
  negative_slope: float = 0.3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z, labels=None, *, train: bool = False):
    h, w, c = self.image_shape
    if h % 4 or w % 4:
      raise ConfigError(
        f"--config.data.image_size: the DCGAN generator needs image sides divisible by 4, "
        f"got {h}x{w}; use e.g. --config.data.image_size='(32, 32)'."
      )
    features = {}
    x = z.astype(self.dtype)
    if self.num_classes:
      # The label enters as a learned embedding next to the noise.
      y = nn.Embed(self.num_classes, self.label_dim, embedding_init=DCGAN_INIT, name="label_embed")(
        labels
      )
      x = jnp.concatenate([x, y.astype(self.dtype)], axis=-1)  # [B, latent + label_dim]
    bn = lambda name: _batch_norm(train, self.bn_momentum, True, name, self.dtype)  # noqa: E731
    act = lambda v: nn.leaky_relu(v, self.negative_slope)  # noqa: E731
    x = nn.Dense(
      h // 4 * w // 4 * self.widths[0],
      use_bias=False,
      kernel_init=DCGAN_INIT,
      dtype=self.dtype,
      name="project",
    )(x)
    x = act(bn("bn0")(x)).reshape(-1, h // 4, w // 4, self.widths[0])  # [B, H/4, W/4, 256]
    features["project"] = x
    k = (self.kernel_size, self.kernel_size)
    for i, (width, stride) in enumerate(((self.widths[1], 1), (self.widths[2], 2))):
      x = ConvTranspose(
        width,
        k,
        (stride, stride),
        use_bias=False,
        kernel_init=DCGAN_INIT,
        dtype=self.dtype,
        name=f"convt{i + 1}",
      )(x)
      x = act(bn(f"bn{i + 1}")(x))
      features[f"convt{i + 1}"] = x  # [B, H/4, W/4, 128], then [B, H/2, W/2, 64]
    x = ConvTranspose(
      c,
      k,
      (2, 2),
      use_bias=False,
      kernel_init=DCGAN_INIT,
      dtype=self.dtype,
      name="convt3",
    )(x)
    return jnp.tanh(x.astype(jnp.float32)), features  # [B, H, W, C]


class DCGANDiscriminator(nn.Module):
  """Conv(64, 5x5, s2) -> LReLU(0.3) -> Dropout(0.3) -> Conv(128, 5x5, s2) -> LReLU ->
  Dropout(0.3) -> Dense(1); conditional (label map + projection) when ``num_classes`` > 0."""

  widths: Sequence[int] = (64, 128)
  kernel_size: int = 5
  dropout: float = 0.3
  num_classes: int = 0
  negative_slope: float = 0.3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, labels=None, *, train: bool = False):
    features = {}
    x = images.astype(self.dtype)
    b, h, w, _ = x.shape
    if self.num_classes:
      # A learned H x W map per class, as an extra input channel: the first
      # convolution can then compare the image with what the class should look like.
      label_map = nn.Embed(self.num_classes, h * w, embedding_init=DCGAN_INIT, name="label_map")(
        labels
      )
      x = jnp.concatenate([x, label_map.reshape(b, h, w, 1).astype(self.dtype)], -1)
    k = (self.kernel_size, self.kernel_size)
    for i, width in enumerate(self.widths):
      x = Conv(
        width,
        k,
        (2, 2),
        padding="SAME",
        kernel_init=DCGAN_INIT,
        dtype=self.dtype,
        name=f"conv{i + 1}",
      )(x)
      x = nn.leaky_relu(x, self.negative_slope)
      features[f"conv{i + 1}"] = x  # [B, H/2, W/2, 64], then [B, H/4, W/4, 128]
      x = Dropout(self.dropout, deterministic=not train)(x)
    x = x.reshape(b, -1)  # [B, H/4 * W/4 * 128]
    logits = nn.Dense(1, kernel_init=DCGAN_INIT, dtype=self.dtype, name="out")(x)[:, 0]
    if self.num_classes:
      # Projection discriminator: logit += <embed(y), features>.
      y = nn.Embed(
        self.num_classes, x.shape[-1], embedding_init=DCGAN_INIT, name="label_projection"
      )(labels)
      logits = logits + jnp.sum(y.astype(self.dtype) * x, axis=-1)
    return logits.astype(jnp.float32), features


class ConvTGenerator(nn.Module):
  """A PyTorch-style DCGAN generator: z as a 1x1 map, four transposed convolutions.

  1x1 -> ConvT(256, 3x3, s2, VALID) -> 3x3 -> ConvT(128, 3x3, s2, VALID) -> 7x7 ->
  ConvT(64, 4x4, s2, SAME) -> 14x14 -> ConvT(C, 4x4, s2, SAME) -> 28x28 -> tanh, batch norm
  and ReLU between. The two small VALID layers use ``nn.ConvTranspose`` (their outputs are
  at most 7x7, where XLA's form costs little); the two large ones :class:`ConvTranspose`.
  """

  image_shape: Sequence[int] = (28, 28, 1)
  widths: Sequence[int] = (256, 128, 64)
  bn_momentum: float = 0.9
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z, labels=None, *, train: bool = False):
    del labels
    h, w, c = self.image_shape
    if (h, w) != (28, 28):
      raise ConfigError(
        f"--config.data.image_size: this generator makes 28x28 images (1 -> 3 -> 7 -> 14 -> "
        f"28), not {h}x{w}; use 28x28 images or --config.model.name=dcgan."
      )
    features = {}
    bn = lambda name: _batch_norm(train, self.bn_momentum, True, name, self.dtype)  # noqa: E731
    x = z.astype(self.dtype)[:, None, None, :]  # [B, 1, 1, latent]
    for i, width in enumerate(self.widths[:2]):
      x = nn.ConvTranspose(
        width,
        (3, 3),
        (2, 2),
        padding="VALID",
        use_bias=False,
        kernel_init=DCGAN_INIT,
        dtype=self.dtype,
        name=f"convt{i + 1}",
      )(x)
      x = nn.relu(bn(f"bn{i + 1}")(x))
      features[f"convt{i + 1}"] = x  # [B, 3, 3, 256], then [B, 7, 7, 128]
    x = ConvTranspose(
      self.widths[2],
      (4, 4),
      (2, 2),
      use_bias=False,
      kernel_init=DCGAN_INIT,
      dtype=self.dtype,
      name="convt3",
    )(x)
    x = nn.relu(bn("bn3")(x))
    features["convt3"] = x  # [B, 14, 14, 64]
    x = ConvTranspose(
      c,
      (4, 4),
      (2, 2),
      use_bias=False,
      kernel_init=DCGAN_INIT,
      dtype=self.dtype,
      name="convt4",
    )(x)
    return jnp.tanh(x.astype(jnp.float32)), features  # [B, 28, 28, C]


class StridedDiscriminator(nn.Module):
  """A PyTorch-style DCGAN discriminator: 4x4 stride-2 convolutions 28 -> 14 -> 7 -> 3 -> 1.

  Conv(64) -> LReLU(0.2) -> Conv(128) -> BN -> LReLU -> Conv(256) -> BN -> LReLU -> Conv(1).
  """

  widths: Sequence[int] = (64, 128, 256)
  bn_momentum: float = 0.9
  negative_slope: float = 0.2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, labels=None, *, train: bool = False):
    del labels
    features = {}
    x = images.astype(self.dtype)
    for i, width in enumerate(self.widths):
      x = nn.Conv(
        width,
        (4, 4),
        (2, 2),
        padding=((1, 1), (1, 1)),
        use_bias=False,
        kernel_init=DCGAN_INIT,
        dtype=self.dtype,
        name=f"conv{i + 1}",
      )(x)
      if i > 0:
        x = _batch_norm(train, self.bn_momentum, True, f"bn{i + 1}", self.dtype)(x)
      x = nn.leaky_relu(x, self.negative_slope)
      features[f"conv{i + 1}"] = x  # [B, 14, 14, 64], [B, 7, 7, 128], [B, 3, 3, 256]
    x = nn.Conv(
      1,
      (4, 4),
      (2, 2),
      padding=((1, 1), (1, 1)),
      use_bias=False,
      kernel_init=DCGAN_INIT,
      dtype=self.dtype,
      name="out",
    )(x)  # [B, 1, 1, 1]
    return x.reshape(x.shape[0]).astype(jnp.float32), features


# -- factories ------------------------------------------------------------------------------------
def _unconditional(generator_cls, discriminator_cls, doc: str):
  """A factory of the unconditional pair of these two classes (labels ignored)."""

  def factory(
    image_shape=(28, 28, 1), num_classes: int = 0, latent_dim: int = 100, dtype=jnp.float32
  ):
    del num_classes
    generator = generator_cls(tuple(image_shape), dtype=dtype)
    return GAN(generator, discriminator_cls(dtype=dtype), latent_dim, False)

  factory.__doc__ = doc
  return factory


dense_gan = register("dense_gan")(
  _unconditional(DenseGenerator, DenseDiscriminator, "The dense GAN (MLP generator and critic).")
)
dcgan = register("dcgan")(
  _unconditional(DCGANGenerator, DCGANDiscriminator, "The DCGAN-28 of the `dcgan` benchmark.")
)
dcgan_convt = register("dcgan_convt")(
  _unconditional(ConvTGenerator, StridedDiscriminator, "The four-ConvT DCGAN, strided critic.")
)


@register("cdcgan")
def cdcgan(
  image_shape=(28, 28, 1),
  num_classes: int = 10,
  latent_dim: int = 100,
  dtype=jnp.float32,
) -> GAN:
  """The class-conditional DCGAN: both networks see a learned embedding of the label."""
  if num_classes < 2:
    raise ValueError(f"the conditional DCGAN needs num_classes >= 2, got {num_classes}.")
  return GAN(
    DCGANGenerator(tuple(image_shape), num_classes=num_classes, dtype=dtype),
    DCGANDiscriminator(num_classes=num_classes, dtype=dtype),
    latent_dim,
    True,
  )


@register("cdcgan_tiny")
def tiny_gan(
  image_shape=(28, 28, 1),
  num_classes: int = 10,
  latent_dim: int = 8,
  dtype=jnp.float32,
) -> GAN:
  """A narrow DCGAN for tests (3x3 kernels, widths 16-8-8 / 8-16), conditional when
  ``num_classes`` > 0; ``dcgan_tiny`` is its unconditional form."""
  return GAN(
    DCGANGenerator(
      tuple(image_shape),
      widths=(16, 8, 8),
      kernel_size=3,
      num_classes=num_classes,
      label_dim=4,
      dtype=dtype,
    ),
    DCGANDiscriminator(widths=(8, 16), kernel_size=3, num_classes=num_classes, dtype=dtype),
    latent_dim,
    num_classes > 0,
  )


@register("dcgan_tiny")
def dcgan_tiny(
  image_shape=(28, 28, 1), num_classes: int = 0, latent_dim: int = 8, dtype=jnp.float32
):
  """The unconditional ``tiny_gan`` (labels ignored)."""
  del num_classes
  return tiny_gan(image_shape, 0, latent_dim, dtype)
