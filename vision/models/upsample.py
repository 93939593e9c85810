"""Upsampling layers for decoders and generators that are fast on XLA:CPU.

``ConvTranspose`` is a drop-in for ``nn.ConvTranspose(features, kernel_size,
strides, padding='SAME')`` (flax's default ``transpose_kernel=False``): same
parameter names and shapes (``kernel`` [kh, kw, in, out], ``bias`` [out]), same
function. Its ``impl`` chooses how the function is computed:

* ``'xla'``: ``lax.conv_transpose``, i.e. a convolution over the input dilated
  with zeros. Its gradient is lowered by XLA:CPU to a slow window-dilated
  convolution (about 7x slower than the alternative below, BENCHMARKS.md).
* ``'subpixel'``: every output phase ``(r_h, r_w)`` of a stride-``s`` transposed
  convolution is an ordinary stride-1 convolution of the *undilated* input with
  a sub-kernel of the transposed kernel. All ``s*s`` phases are computed by one
  stride-1 convolution to ``s*s*out`` channels, then interleaved by
  depth-to-space. The sub-kernels are gathered from the one stored kernel inside
  the layer, so both forms share parameters and checkpoints.
* ``'phase'``: the same phases, each a stride-1 convolution with exactly the
  kernel taps that reach it (9 taps for a 3x3 stride-2 kernel where the
  sub-pixel form computes 16, 25 instead of 36 for 5x5), with custom gradients
  that avoid dilated operands (:func:`vision.models.conv.conv_transpose`).
* ``'auto'`` (the default): ``'phase'`` on CPU, ``'xla'`` elsewhere.

Derivation (one spatial axis, kernel size ``k``, stride ``s``, SAME padding with
``pad_a`` zeros before the dilated input, as ``lax.conv_transpose`` pads):
``y[s*i + r] = sum_j xd[s*i + r - pad_a + j] K[j]`` where ``xd[m] = x[m / s]``
when ``s`` divides ``m``. Writing ``m = s*(i + t)`` gives
``y[s*i + r] = sum_t x[i + t] K[s*t - r + pad_a]``: a stride-1 correlation over
offsets ``t`` whose taps are the kernel entries ``s*t - r + pad_a`` (zero where
that index falls outside ``[0, k)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vision.models import conv

IMPLS = ("auto", "phase", "subpixel", "xla")


def _same_padding(k: int, s: int) -> tuple[int, int]:
  """Before/after padding of the dilated input, exactly as ``lax.conv_transpose('SAME')``."""
  pad_len = k + s - 2
  pad_a = k - 1 if s > k - 1 else math.ceil(pad_len / 2)
  return pad_a, pad_len - pad_a


def subpixel_taps(k: int, s: int) -> tuple[np.ndarray, int, int]:
  """Kernel indices of the stride-1 phase convolution along one axis.

  Returns ``(index [T, s], t_min, t_max)``: ``index[t - t_min, r]`` is the
  transposed kernel's tap used by phase ``r`` at input offset ``t``, or ``k``
  (a zero tap) where the phase has no tap at that offset.
  """
  pad_a, _ = _same_padding(k, s)
  t_min = min(-((pad_a - r) // s) for r in range(s))  # ceil((r - pad_a) / s)
  t_max = max((r - pad_a + k - 1) // s for r in range(s))
  index = np.full((t_max - t_min + 1, s), k, np.int32)
  for t in range(t_min, t_max + 1):
    for r in range(s):
      j = s * t - r + pad_a
      if 0 <= j < k:
        index[t - t_min, r] = j
  return index, t_min, t_max


def subpixel_kernel(kernel: jax.Array, strides: tuple[int, int]) -> tuple[jax.Array, tuple]:
  """Transposed-conv kernel [kh, kw, in, out] -> stride-1 kernel [Th, Tw, in, sh*sw*out].

  Also returns the explicit padding of the stride-1 convolution. Differentiable
  (a gather), so gradients flow back to the stored transposed kernel.
  """
  kh, kw, cin, cout = kernel.shape
  (sh, sw) = strides
  index_h, h_min, h_max = subpixel_taps(kh, sh)
  index_w, w_min, w_max = subpixel_taps(kw, sw)
  # One zero row/column at index k stands for "no tap".
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # [kh+1, kw+1, in, out]
  taps = padded[index_h[:, :, None, None], index_w[None, None, :, :]]  # [Th, sh, Tw, sw, in, out]
  taps = taps.transpose(0, 2, 4, 1, 3, 5)  # [Th, Tw, in, sh, sw, out]
  taps = taps.reshape(taps.shape[0], taps.shape[1], cin, sh * sw * cout)  # [Th, Tw, in, sh*sw*out]
  padding = ((-h_min, h_max), (-w_min, w_max))
  return taps, padding


def depth_to_space(x: jax.Array, strides: tuple[int, int]) -> jax.Array:
  """[B, H, W, sh*sw*C] (phase-major channels) -> [B, sh*H, sw*W, C]."""
  b, h, w, c = x.shape
  sh, sw = strides
  x = x.reshape(b, h, w, sh, sw, c // (sh * sw))  # [B, H, W, sh, sw, C]
  x = x.transpose(0, 1, 3, 2, 4, 5)  # [B, H, sh, W, sw, C]
  return x.reshape(b, h * sh, w * sw, c // (sh * sw))  # [B, sh*H, sw*W, C]


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling (Keras ``UpSampling2D``) of [B, H, W, C] by ``factor``."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return x.reshape(b, h * factor, w * factor, c)  # [B, factor*H, factor*W, C]


def resolve_impl(impl: str) -> str:
  if impl not in IMPLS:
    raise ValueError(f"unknown upsampling impl {impl!r}; choose one of {', '.join(IMPLS)}.")
  if impl == "auto":
    return "phase" if jax.default_backend() == "cpu" else "xla"
  return impl


class ConvTranspose(nn.Module):
  """``nn.ConvTranspose(padding='SAME')`` with a choice of implementation (see module doc)."""

  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (2, 2)
  padding: str = "SAME"
  use_bias: bool = True
  impl: str = "auto"
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.padding != "SAME":
      raise ValueError(f"only padding='SAME' is supported, not {self.padding!r}.")
    kernel_size = tuple(self.kernel_size)
    strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    kernel = self.param(
      "kernel", self.kernel_init, (*kernel_size, x.shape[-1], self.features), self.param_dtype
    )
    bias = (
      self.param("bias", self.bias_init, (self.features,), self.param_dtype)
      if self.use_bias
      else None
    )
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    dimension_numbers = ("NHWC", "HWIO", "NHWC")
    impl = resolve_impl(self.impl)
    if impl == "xla":
      y = lax.conv_transpose(x, kernel, strides, "SAME", dimension_numbers=dimension_numbers)
    elif impl == "phase":
      y = conv.transpose_same(x, kernel, strides, impl="phase")
    else:
      taps, padding = subpixel_kernel(kernel, strides)
      y = lax.conv_general_dilated(
        x, taps, (1, 1), padding, dimension_numbers=dimension_numbers
      )  # [B, H, W, s*s*out]
      y = depth_to_space(y, strides)
    if bias is not None:
      y = y + bias
    return y


class Upsample(nn.Module):
  """A learned x``factor`` upsampling block: ``ConvTranspose(stride=factor)`` then an activation.

  The building block of decoders and DCGAN generators; ``activation=None``
  leaves the output linear (e.g. logits).
  """

  features: int
  kernel_size: Sequence[int] = (3, 3)
  factor: int = 2
  activation: str | None = "relu"
  impl: str = "auto"
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = ConvTranspose(
      self.features,
      self.kernel_size,
      (self.factor, self.factor),
      impl=self.impl,
      dtype=self.dtype,
      name="conv",
    )(x)
    return getattr(nn, self.activation)(x) if self.activation else x
