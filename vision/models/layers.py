"""The layers the models are built from, and the helpers of the pretrained backbones.

Layers (Flax modules): :class:`Conv`, :class:`ConvTranspose`,
:class:`DepthwiseConv`, :class:`Dropout` and the :class:`Upsample` block. Each
computes through :mod:`vision.ops`, so the process-wide ``kernels`` switch
(:mod:`vision.ops.kernels`) chooses between the portable ``lax`` form and the
forms XLA:CPU runs faster; every form computes the same function with the same
parameters. ``Conv``, ``ConvTranspose`` and ``Dropout`` are drop-ins for
``nn.Conv``, ``nn.ConvTranspose(padding='SAME')`` and ``nn.Dropout`` (same
fields, defaults and parameter trees); :data:`backbone_conv` is ``Conv`` with
the backbones' defaults (no bias, symmetric padding, He fan-out init).

Helpers:

* ``tf_same_padding``: TensorFlow's "SAME" padding, which pads asymmetrically
  (more at the end) when the total padding is odd; weights trained in
  TensorFlow (EfficientNet-Lite, Keras MobileNetV2) depend on it exactly. It is
  also ``lax``'s 'SAME'.
* ``preprocess_images``: the input conventions of the original weights, so
  every backbone takes images in [0, 1] (or uint8) and normalizes inside.
* ``max_pool_2x2``: 2x2 max pooling as a reshape and a max (plain pooling on
  every backend; its gradient is a max reduction's, which avoids XLA:CPU's
  slow select-and-scatter).
* ``upsample_nearest``, ``batch_norm``, ``adaptive_avg_pool``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from vision.ops import conv, depthwise, dropout

Dtype = Any
PaddingLike = str | int | Sequence[tuple[int, int]]

# ImageNet statistics used by torchvision's pretrained models.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Per-channel means in BGR order used by the original Caffe VGG/ResNet (Keras).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

PREPROCESS_MODES = ("torch", "caffe", "tf", "lite", "none")


def preprocess_images(images: jax.Array, mode: str, dtype: Dtype = jnp.float32) -> jax.Array:
  """Maps images ``[B, H, W, C]`` in [0, 1] (or uint8) to what the weights expect.

  Modes: ``'torch'`` ImageNet mean/std; ``'caffe'`` RGB->BGR and subtraction of
  the BGR means on the 0..255 scale (Keras VGG/ResNet50); ``'tf'`` [-1, 1]
  (Keras MobileNetV2); ``'lite'`` ``(x*255 - 127) / 128`` (EfficientNet-Lite);
  ``'none'`` no change. Grey images (C=1) are tiled to three channels.
  """
  if images.dtype == jnp.uint8:
    x = images.astype(jnp.float32) / 255.0
  else:
    x = images.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.tile(x, (1,) * (x.ndim - 1) + (3,))  # [B, H, W, 3]
  if mode == "torch":
    x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
  elif mode == "caffe":
    x = x[..., ::-1] * 255.0 - jnp.asarray(CAFFE_BGR_MEAN)
  elif mode == "tf":
    x = x * 2.0 - 1.0
  elif mode == "lite":
    x = (x * 255.0 - 127.0) / 128.0
  elif mode != "none":
    raise ValueError(f"unknown preprocess mode {mode!r}; expected one of {PREPROCESS_MODES}")
  return x.astype(dtype)


def tf_same_padding(
  input_size: Sequence[int], kernel_size: Sequence[int], strides: Sequence[int]
) -> list[tuple[int, int]]:
  """TensorFlow "SAME" padding per spatial dim as ``(before, after)`` pairs.

  Output size is ``ceil(n / s)``; the total padding is split with the odd
  pixel at the end, e.g. ``(0, 1)`` for a 3x3 stride-2 conv on an even input.
  """
  pads = []
  for n, k, s in zip(input_size, kernel_size, strides):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    pads.append((total // 2, total - total // 2))
  return pads


def resolve_padding(
  padding: PaddingLike,
  input_size: Sequence[int],
  kernel_size: Sequence[int],
  strides: Sequence[int],
) -> list[tuple[int, int]]:
  """Explicit ``(before, after)`` pairs from a padding spec.

  ``'TF_SAME'`` TensorFlow SAME (asymmetric); ``'SYMMETRIC'`` ``k // 2`` on
  both sides (PyTorch's usual choice); ``'VALID'``; an int; or explicit pairs.
  """
  if isinstance(padding, str):
    p = padding.upper()
    if p in ("TF_SAME", "SAME"):
      return tf_same_padding(input_size, kernel_size, strides)
    if p == "SYMMETRIC":
      return [(k // 2, k // 2) for k in kernel_size]
    if p == "VALID":
      return [(0, 0)] * len(kernel_size)
    raise ValueError(f"unknown padding {padding!r}")
  if isinstance(padding, int):
    return [(padding, padding)] * len(kernel_size)
  return [tuple(p) for p in padding]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
  return (value, value) if isinstance(value, int) else tuple(value)


class Conv(nn.Module):
  """``nn.Conv`` for 2-D NHWC inputs, computed by :func:`vision.ops.conv.conv`.

  Same parameters (``kernel`` [kh, kw, Cin, Cout], ``bias`` [Cout]) and defaults
  as ``nn.Conv``, so the two are interchangeable in a checkpoint. ``padding``
  is ``'SAME'`` (= ``'TF_SAME'``), ``'VALID'``, ``'SYMMETRIC'`` (``k // 2`` on
  both sides, PyTorch's usual choice), an int or explicit pairs
  (:func:`resolve_padding`).
  """

  features: int
  kernel_size: int | Sequence[int] = (3, 3)
  strides: int | Sequence[int] = 1
  padding: PaddingLike = "SAME"
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ks, st = _pair(self.kernel_size), _pair(self.strides)
    pads = resolve_padding(self.padding, x.shape[1:3], ks, st)
    x, kernel, bias = _kernel_and_bias(self, x, ks)
    y = conv.conv(x, kernel, st, pads)
    return y if bias is None else y + bias


def _kernel_and_bias(layer, x: jax.Array, kernel_size: tuple[int, int]):
  """``layer``'s parameters as ``nn.Conv`` / ``nn.ConvTranspose`` name and shape them
  (``kernel`` [kh, kw, Cin, features], ``bias`` [features] or None), and ``x``, all
  promoted to the layer's compute dtype. Called from the layer's compact ``__call__``."""
  kernel = layer.param(
    "kernel", layer.kernel_init, (*kernel_size, x.shape[-1], layer.features), layer.param_dtype
  )
  bias = (
    layer.param("bias", layer.bias_init, (layer.features,), layer.param_dtype)
    if layer.use_bias
    else None
  )
  return nn.dtypes.promote_dtype(x, kernel, bias, dtype=layer.dtype)


# The backbones' initialization (He normal on the fan-out, truncated, as torchvision's).
BACKBONE_KERNEL_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")
# The backbones' convolution: no bias, PyTorch's symmetric padding, BACKBONE_KERNEL_INIT.
backbone_conv = functools.partial(
  Conv, padding="SYMMETRIC", use_bias=False, kernel_init=BACKBONE_KERNEL_INIT
)


class ConvTranspose(nn.Module):
  """``nn.ConvTranspose(padding='SAME')`` (flax's ``transpose_kernel=False``), computed by
  :func:`vision.ops.conv.conv_transpose`: same parameters (``kernel`` [kh, kw, in, out],
  ``bias`` [out]), same function."""

  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: int | Sequence[int] = (2, 2)
  padding: str = "SAME"
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.padding != "SAME":
      raise ValueError(f"only padding='SAME' is supported, not {self.padding!r}.")
    x, kernel, bias = _kernel_and_bias(self, x, _pair(self.kernel_size))
    y = conv.conv_transpose(x, kernel, _pair(self.strides))
    return y if bias is None else y + bias


class DepthwiseConv(nn.Module):
  """Depthwise 2D convolution (one filter per channel), parameter ``kernel [kh, kw, 1, C]``,
  computed by :func:`vision.ops.depthwise.depthwise_conv`.

  Attributes:
    kernel_size: int or (kh, kw).
    strides: int or (sh, sw).
    padding: ``'TF_SAME'``, ``'SYMMETRIC'``, ``'VALID'``, int, or explicit
      ``((top, bottom), (left, right))``.
    use_bias: add a per-channel bias.
    dtype: compute dtype; parameters stay ``param_dtype``.
  """

  kernel_size: int | Sequence[int] = 3
  strides: int | Sequence[int] = 1
  padding: PaddingLike = "SYMMETRIC"
  use_bias: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  kernel_init: Any = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    ks, st = _pair(self.kernel_size), _pair(self.strides)
    channels = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, ks + (1, channels), self.param_dtype)
    pads = resolve_padding(self.padding, x.shape[1:3], ks, st)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    y = depthwise.depthwise_conv(x, kernel, st, pads)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (channels,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class Dropout(nn.Module):
  """``flax.linen.Dropout`` with the mask of :func:`vision.ops.dropout.bernoulli`: same
  fields, same masks for the same key, same outputs."""

  rate: float
  broadcast_dims: Sequence[int] = ()
  deterministic: bool | None = None
  rng_collection: str = "dropout"

  @nn.compact
  def __call__(self, inputs, deterministic: bool | None = None, rng=None):
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    if self.rate == 0.0 or deterministic:
      return inputs
    if self.rate == 1.0:
      return jnp.zeros_like(inputs)
    keep_prob = 1.0 - self.rate
    if rng is None:
      rng = self.make_rng(self.rng_collection)
    shape = list(inputs.shape)
    for dim in self.broadcast_dims:
      shape[dim] = 1
    mask = jnp.broadcast_to(dropout.bernoulli(rng, keep_prob, shape), inputs.shape)
    return lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))


class Upsample(nn.Module):
  """A learned x``factor`` upsampling block: ``ConvTranspose(stride=factor)`` then an activation.

  ``activation=None`` leaves the output linear (e.g. logits).
  """

  features: int
  kernel_size: Sequence[int] = (3, 3)
  factor: int = 2
  activation: str | None = "relu"
  dtype: Dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = ConvTranspose(
      self.features, self.kernel_size, (self.factor, self.factor), dtype=self.dtype, name="conv"
    )(x)
    return getattr(nn, self.activation)(x) if self.activation else x


def max_pool_2x2(x: jax.Array, padding: str = "VALID") -> jax.Array:
  """2x2/2 max pooling of [B, H, W, C] as a reshape and a max.

  ``'VALID'`` drops an odd last row/column; ``'SAME'`` (Keras
  ``MaxPooling2D(padding='same')``: 7 -> 4) pads it with -inf. Same values as
  ``nn.max_pool(x, (2, 2), (2, 2), padding)``; the gradient is a max
  reduction's, which avoids XLA:CPU's slow select-and-scatter and is an
  ordinary reduction on every other backend too.
  """
  b, h, w, c = x.shape
  if padding == "SAME":
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-jnp.inf)
    h, w = h + h % 2, w + w % 2
  elif padding == "VALID":
    x = x[:, : h // 2 * 2, : w // 2 * 2]
  else:
    raise ValueError(f"max_pool_2x2 padding must be 'VALID' or 'SAME', not {padding!r}.")
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))  # [B, H/2, W/2, C]


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling (Keras ``UpSampling2D``) of [B, H, W, C] by ``factor``."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return x.reshape(b, h * factor, w * factor, c)  # [B, factor*H, factor*W, C]


def batch_norm(train: bool, *, momentum: float, epsilon: float, dtype: Dtype, name: str):
  """``nn.BatchNorm`` with Flax momentum (= 1 - PyTorch momentum) and float32 statistics."""
  return nn.BatchNorm(
    use_running_average=not train,
    momentum=momentum,
    epsilon=epsilon,
    dtype=dtype,
    param_dtype=jnp.float32,
    name=name,
  )


def adaptive_avg_pool(x: jax.Array, output_size: tuple[int, int]) -> jax.Array:
  """PyTorch's ``AdaptiveAvgPool2d`` on ``[B, H, W, C]`` (bins floor(i*H/o)..ceil((i+1)*H/o))."""
  h, w = x.shape[1:3]
  oh, ow = output_size
  if (h, w) == (oh, ow):
    return x
  if h % oh == 0 and w % ow == 0:
    x = x.reshape(x.shape[0], oh, h // oh, ow, w // ow, x.shape[-1])  # [B, oh, kh, ow, kw, C]
    return x.mean(axis=(2, 4))
  rows = []
  for i in range(oh):
    h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
    cols = []
    for j in range(ow):
      w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
      cols.append(x[:, h0:h1, w0:w1].mean(axis=(1, 2)))
    rows.append(jnp.stack(cols, axis=1))  # [B, ow, C]
  return jnp.stack(rows, axis=1)  # [B, oh, ow, C]


relu6 = jax.nn.relu6

__all__ = [
  "Conv",
  "ConvTranspose",
  "DepthwiseConv",
  "Dropout",
  "Upsample",
  "adaptive_avg_pool",
  "backbone_conv",
  "batch_norm",
  "max_pool_2x2",
  "preprocess_images",
  "relu6",
  "resolve_padding",
  "tf_same_padding",
  "upsample_nearest",
]
