"""Layers shared by the pretrained backbones.

* ``DepthwiseConv``: a depthwise convolution with two interchangeable
  implementations. XLA:CPU lowers ``feature_group_count=C`` convolutions to a
  slow generic path (about 10x slower than PyTorch, forward and gradient, see
  BENCHMARKS.md), while the same function written as k*k shifted
  multiply-adds over a padded input runs at PyTorch speed. On GPU the grouped
  convolution is the better kernel. Both keep Flax's grouped-conv parameter
  layout, so converted weights are shared.
* ``tf_same_padding``: TensorFlow's "SAME" padding, which pads asymmetrically
  (more at the end) when the total padding is odd; weights trained in
  TensorFlow (EfficientNet-Lite, Keras MobileNetV2) depend on it exactly.
* ``preprocess_images``: the input conventions of the original weights, so
  every backbone takes images in [0, 1] (or uint8) and normalizes inside.
* ``BatchNorm`` / ``adaptive_avg_pool`` helpers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from vision.models.conv import conv2d, convolve, depthwise_adjoint  # noqa: F401 - conv2d re-exported

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


# The kernel gradient of stride-1 'shift' depthwise convolutions scanned image by
# image (same function and gradients; a switch for benchmarks and tests).
DEPTHWISE_KERNEL_GRAD_PER_IMAGE = True
# The input gradient of 'shift' depthwise convolutions by phases of the input
# (vision.models.conv.depthwise_adjoint) instead of autodiff's interior-padded
# sum; same function and gradients, a switch for benchmarks and tests.
DEPTHWISE_INPUT_GRAD_BY_PHASE = True


def default_depthwise_impl() -> str:
  """``'shift'`` on CPU (grouped convs are slow in XLA:CPU), ``'xla'`` elsewhere."""
  return "shift" if jax.default_backend() == "cpu" else "xla"


def _depthwise_shift(x, kernel, strides, pads):
  """Depthwise conv as k*k shifted multiply-adds. x [B, H, W, C], kernel [kh, kw, 1, C]."""
  kh, kw = kernel.shape[:2]
  sh, sw = strides
  x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  b, hp, wp, c = x.shape
  oh = (hp - kh) // sh + 1
  ow = (wp - kw) // sw + 1
  # Strided slices were measured as fast as (or faster than) a space-to-depth
  # phase split on XLA:CPU, forward and gradient, so stride 2 uses them too.
  out = None
  for i in range(kh):
    for j in range(kw):
      patch = lax.slice(
        x, (0, i, j, 0), (b, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c), (1, sh, sw, 1)
      )
      term = patch * kernel[i, j, 0]  # [B, oh, ow, C]
      out = term if out is None else out + term
  return out


def _depthwise_kernel_grad_per_image(x, g, kernel_shape, strides, pads):
  """``d/dkernel`` of ``_depthwise_shift``: per tap, sum(shifted window of x * g).

  Scanned over the batch one image at a time, so that the k*k windows of an
  image are read while it is still in cache: on XLA:CPU this is 1.5-4x faster
  than the whole-batch reductions autodiff produces for stride-1 layers
  (docs/performance.md). Stride 2 reads are strided either way, no faster.
  """
  kh, kw = kernel_shape[:2]
  sh, sw = strides
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  _, hp, wp, c = xp.shape
  oh, ow = g.shape[1:3]

  def one_image(acc, xg):
    xi, gi = xg  # [hp, wp, C], [oh, ow, C]
    taps = [
      jnp.sum(
        lax.slice(xi, (i, j, 0), (i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c), (sh, sw, 1))
        * gi,
        axis=(0, 1),
      )
      for i in range(kh)
      for j in range(kw)
    ]
    return acc + jnp.stack(taps).reshape(kh, kw, 1, c).astype(acc.dtype), None

  init = jnp.zeros(kernel_shape, jnp.promote_types(x.dtype, jnp.float32))
  return lax.scan(one_image, init, (xp, g))[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise_shift_scan(x, kernel, strides, pads):
  return _depthwise_shift(x, kernel, strides, pads)


def _depthwise_shift_scan_fwd(x, kernel, strides, pads):
  return _depthwise_shift(x, kernel, strides, pads), (x, kernel)


def _depthwise_shift_scan_bwd(strides, pads, res, g):
  x, kernel = res
  if DEPTHWISE_INPUT_GRAD_BY_PHASE:
    gx = depthwise_adjoint(g, kernel, strides, pads, x.shape[1:3])
  else:
    _, x_vjp = jax.vjp(lambda x_: _depthwise_shift(x_, kernel, strides, pads), x)
    (gx,) = x_vjp(g)
  gk = _depthwise_kernel_grad_per_image(x, g, kernel.shape, strides, pads)
  return gx, gk.astype(kernel.dtype)


_depthwise_shift_scan.defvjp(_depthwise_shift_scan_fwd, _depthwise_shift_scan_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise_shift_strided(x, kernel, strides, pads):
  return _depthwise_shift(x, kernel, strides, pads)


def _depthwise_shift_strided_bwd(strides, pads, res, g):
  """Input gradient by phases (:func:`vision.models.conv.depthwise_adjoint`); the kernel
  gradient as autodiff makes it (whole-batch reductions; per image was no faster at stride 2)."""
  x, kernel = res
  gx = depthwise_adjoint(g, kernel, strides, pads, x.shape[1:3])
  _, k_vjp = jax.vjp(lambda k: _depthwise_shift(x, k, strides, pads), kernel)
  (gk,) = k_vjp(g)
  return gx, gk


_depthwise_shift_strided.defvjp(_depthwise_shift_scan_fwd, _depthwise_shift_strided_bwd)


def depthwise_conv(x, kernel, strides=(1, 1), padding=((0, 0), (0, 0)), impl="shift"):
  """Functional depthwise convolution (multiplier 1). kernel: ``[kh, kw, 1, C]``."""
  strides = tuple(strides)
  pads = [tuple(p) for p in padding]
  if impl == "shift":
    if strides == (1, 1) and DEPTHWISE_KERNEL_GRAD_PER_IMAGE:
      return _depthwise_shift_scan(x, kernel, strides, pads)
    if strides != (1, 1) and DEPTHWISE_INPUT_GRAD_BY_PHASE:
      return _depthwise_shift_strided(x, kernel, strides, pads)
    return _depthwise_shift(x, kernel, strides, pads)
  if impl == "xla":
    return lax.conv_general_dilated(
      x,
      kernel,
      window_strides=strides,
      padding=pads,
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=x.shape[-1],
    )
  raise ValueError(f"unknown depthwise impl {impl!r}; expected 'shift' or 'xla'")


class DepthwiseConv(nn.Module):
  """Depthwise 2D convolution (one filter per channel), parameter ``kernel [kh, kw, 1, C]``.

  Attributes:
    kernel_size: int or (kh, kw).
    strides: int or (sh, sw).
    padding: ``'TF_SAME'``, ``'SYMMETRIC'``, ``'VALID'``, int, or explicit
      ``((top, bottom), (left, right))``.
    use_bias: add a per-channel bias.
    impl: ``'shift'`` (shifted multiply-adds), ``'xla'`` (grouped conv), or
      None for ``default_depthwise_impl()``. Same function and parameters.
    dtype: compute dtype; parameters stay ``param_dtype``.
  """

  kernel_size: int | Sequence[int] = 3
  strides: int | Sequence[int] = 1
  padding: PaddingLike = "SYMMETRIC"
  use_bias: bool = False
  impl: str | None = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  kernel_init: Any = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
    st = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    channels = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, ks + (1, channels), self.param_dtype)
    pads = resolve_padding(self.padding, x.shape[1:3], ks, st)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    y = depthwise_conv(x, kernel, st, pads, self.impl or default_depthwise_impl())
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (channels,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class Conv(nn.Module):
  """Standard convolution, parameters ``kernel [kh, kw, Cin, Cout]`` (+ ``bias``).

  Like ``nn.Conv`` but the padding may be ``'TF_SAME'`` or ``'SYMMETRIC'``,
  resolved against the actual input size.
  """

  features: int
  kernel_size: int | Sequence[int] = 3
  strides: int | Sequence[int] = 1
  padding: PaddingLike = "SYMMETRIC"
  use_bias: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  kernel_init: Any = nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
    st = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    pads = resolve_padding(self.padding, x.shape[1:3], ks, st)
    kernel = self.param(
      "kernel", self.kernel_init, ks + (x.shape[-1], self.features), self.param_dtype
    )
    y = convolve(x.astype(self.dtype), kernel.astype(self.dtype), st, pads)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


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
  "DepthwiseConv",
  "adaptive_avg_pool",
  "batch_norm",
  "conv2d",
  "default_depthwise_impl",
  "depthwise_conv",
  "preprocess_images",
  "relu6",
  "resolve_padding",
  "tf_same_padding",
]
