"""Convolutions and transposed convolutions (NHWC inputs, HWIO kernels), in two forms.

``kernels='portable'`` is ``lax.conv_general_dilated`` / ``lax.conv_transpose``
with the gradients XLA derives. ``kernels='cpu'`` computes the same functions
and gradients with forms that XLA:CPU runs faster (docs/performance.md,
changes 2 and 5, has the measurements):

* **Adjoints without dilation.** XLA differentiates a *strided* convolution
  into a convolution over the output gradient dilated with zeros
  (``lhs_dilate``), which XLA:CPU sends to a slow generic path; a transposed
  convolution is the same operator the other way round, so its forward pass has
  the same problem. :func:`conv_adjoint` computes that operator (the adjoint of
  a strided convolution with respect to its input) from the undilated operand:
  each of the ``s_h * s_w`` *phases* of the result (the pixels ``m`` with
  ``m % s = r``) is an ordinary stride-1 convolution with the kernel taps
  ``i`` that reach it (``i = s*u + c`` for one ``c``), and the phases are
  interleaved. Every tap is used exactly once: no multiplications by zeros,
  unlike the padded sub-pixel form (16 taps instead of 9 for a 3x3 stride-2
  kernel). Results of at most ``NARROW_CHANNELS`` channels take one matmul of
  every pixel with every tap, then shifted adds: a convolution to 1-4 channels
  is a matmul with 1-4 columns, slow on XLA:CPU.
* **Kernel gradients** (:func:`kernel_grad`): XLA's kernel-gradient
  convolution, except one im2col matmul for kernels with at most
  ``IM2COL_MAX_CHANNELS`` input or output channels.
* **1x1 convolutions as one matmul** over the channels (after subsampling for
  strides): XLA:CPU's convolution path runs them several times slower than its
  dot, forward and gradients.
* **Kernels over one input channel** (grey images, the input gradient of a
  one-channel output): up to ``SHIFTED_FMA_MAX_TAPS`` taps, one fused loop of
  broadcast multiply-adds of the shifted windows (a matmul with K = 9 is
  memory-bound on its output); more taps, the windows side by side and one
  matmul (im2col). With three channels (an RGB stem) XLA's convolution is
  faster, so only one channel takes these forms.

:func:`conv` (forward ``lax.conv_general_dilated``-equivalent, input gradient
:func:`conv_adjoint`, kernel gradient :func:`kernel_grad`) and
:func:`conv_transpose` (forward :func:`conv_adjoint`, input gradient a strided
convolution) are ``jax.custom_vjp`` pairs built from those pieces.
tests/test_ops_conv.py compares values and both gradients with the
``'portable'`` form.

Derivation of the adjoint, one spatial axis. ``y[o] = sum_i x[s*o + i - p] w[i]``
(``p`` the low padding). Its adjoint: ``dx[m] = sum_{o, i: s*o + i - p = m} g[o] w[i]``.
For ``m = s*q + r``: ``i = s*(q - o + e) + c`` with ``c = (r + p) mod s`` and
``e = (r + p - c) / s``; with ``u = q - o + e``,
``dx[s*q + r] = sum_u g[q + e - u] w[s*u + c]``: a stride-1 correlation of ``g``
with the taps ``c, c + s, ...`` in reverse order.

A SAME transposed convolution (``lax.conv_transpose(x, K, s, 'SAME')``) is the
adjoint of the stride-``s`` convolution with the flipped, in/out-swapped
kernel and the padding of :func:`same_transpose_padding`, so the same phases
compute it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from vision.ops.kernels import pick

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
# At most this many result channels, conv_adjoint multiplies by every tap first
# (one matmul), then adds shifted windows, instead of a convolution per phase.
NARROW_CHANNELS = 4
# One-input-channel kernels with at most this many taps: shifted multiply-adds
# instead of an im2col matmul.
SHIFTED_FMA_MAX_TAPS = 9
# Kernels (other than 1x1) with at most this many input or output channels get
# their kernel gradient from one im2col matmul instead of XLA's convolution.
IM2COL_MAX_CHANNELS = 4

Padding = Sequence[tuple[int, int]]


def _pairs(padding: Padding) -> tuple[tuple[int, int], ...]:
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def output_size(n: int, k: int, s: int, pad: tuple[int, int]) -> int:
  """Output length of a convolution along one axis."""
  return (n + pad[0] + pad[1] - k) // s + 1


def same_transpose_padding(k: int, s: int) -> tuple[int, int]:
  """Padding of the stride-``s`` convolution whose adjoint is ``lax.conv_transpose(..., 'SAME')``.

  ``lax.conv_transpose`` pads the dilated input with ``pad_a`` before (its
  'SAME' rule); the adjoint of a convolution with low padding ``p`` is the
  same operator with the flipped kernel when ``p = k - 1 - pad_a``. The high
  padding makes the forward convolution map ``s*n`` back to ``n``.
  """
  pad_len = k + s - 2
  pad_a = k - 1 if s > k - 1 else -(-pad_len // 2)
  lo = k - 1 - pad_a
  return lo, k - s - lo


# -- the operations ---------------------------------------------------------------------------
def conv(x, kernel, strides=(1, 1), padding=((0, 0), (0, 0)), kernels: str | None = None):
  """A 2-D convolution ``[B, H, W, Cin] * [kh, kw, Cin, Cout]`` with explicit ``(lo, hi)``
  padding pairs: ``lax.conv_general_dilated``'s function and gradients in either form."""
  strides, pads = tuple(strides), _pairs(padding)
  if pick(kernels) == "portable":
    return lax.conv_general_dilated(
      x, kernel, window_strides=strides, padding=pads, dimension_numbers=DIMENSION_NUMBERS
    )
  if kernel.shape[:2] == (1, 1) and all(p == (0, 0) for p in pads):
    return _conv2d(x, kernel, strides, pads)  # a matmul: its autodiff gradients are matmuls
  return _conv(x, kernel, strides, pads)


def conv_transpose(x, kernel, strides, kernels: str | None = None):
  """``lax.conv_transpose(x, kernel, strides, 'SAME')`` (flax's ``ConvTranspose`` layout).

  ``kernel`` [kh, kw, Cin, Cout]; the result is [B, s_h*H, s_w*W, Cout]. The
  ``'cpu'`` form is :func:`conv_adjoint` of the flipped kernel (one stride-1
  convolution per output phase, every tap used once) with custom gradients.
  """
  sh, sw = strides
  if pick(kernels) == "portable":
    return lax.conv_transpose(x, kernel, (sh, sw), "SAME", dimension_numbers=DIMENSION_NUMBERS)
  kh, kw = kernel.shape[:2]
  padding = (same_transpose_padding(kh, sh), same_transpose_padding(kw, sw))
  forward_kernel = kernel[::-1, ::-1].transpose(0, 1, 3, 2)  # [kh, kw, Cout, Cin]
  _, h, w, _ = x.shape
  return _conv_transpose(x, forward_kernel, (sh, sw), padding, (sh * h, sw * w))


# -- the 'cpu' form's pieces ------------------------------------------------------------------
def _conv2d(x, kernel, strides, padding):
  """The forward convolution of the ``'cpu'`` form (no custom gradient of its own)."""
  pads = _pairs(padding)
  kh, kw, cin, cout = kernel.shape
  if (kh, kw) == (1, 1) and all(p == (0, 0) for p in pads):
    sh, sw = strides
    if (sh, sw) != (1, 1):
      x = x[:, ::sh, ::sw, :]  # [B, ceil(H/sh), ceil(W/sw), Cin]
    b, h, w, _ = x.shape
    y = jnp.dot(x.reshape(b * h * w, cin), kernel.reshape(cin, cout))  # [B*H*W, Cout]
    return y.reshape(b, h, w, cout)
  if cin == 1:
    b = x.shape[0]
    ho, wo = (output_size(n, k, s, p) for n, k, s, p in zip(x.shape[1:3], (kh, kw), strides, pads))
    windows = _windows(x, (kh, kw), tuple(strides), pads, (ho, wo))
    if kh * kw <= SHIFTED_FMA_MAX_TAPS:
      out = None
      for t, window in enumerate(windows):  # [B, Ho, Wo, 1] * [Cout]
        term = window * kernel[t // kw, t % kw, 0]
        out = term if out is None else out + term
      return out
    patches = jnp.concatenate(windows, axis=-1).reshape(b * ho * wo, kh * kw)  # [M, kh*kw]
    return (patches @ kernel.reshape(kh * kw, cout)).reshape(b, ho, wo, cout)
  return lax.conv_general_dilated(
    x, kernel, window_strides=tuple(strides), padding=pads, dimension_numbers=DIMENSION_NUMBERS
  )


def _windows(x, kernel_hw, strides, padding, out_hw, channels_first=False):
  """The input window each kernel tap meets, tap by tap: ``[B, Ho, Wo, C]`` each
  (``[C, B, Ho, Wo]`` with ``channels_first``)."""
  kh, kw = kernel_hw
  (sh, sw), (ho, wo) = strides, out_hw
  # lax.pad: negative (cropping) paddings too
  config = ((0, 0, 0), (*padding[0], 0), (*padding[1], 0), (0, 0, 0))
  xp = lax.pad(x, jnp.zeros((), x.dtype), config)
  if channels_first:
    xp = xp.transpose(3, 0, 1, 2)  # [C, B, H, W]: one transpose, then contiguous windows
    c, b = xp.shape[:2]
    return [
      lax.slice(
        xp, (0, 0, i, j), (c, b, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1), (1, 1, sh, sw)
      )
      for i in range(kh)
      for j in range(kw)
    ]
  b, c = xp.shape[0], xp.shape[-1]
  return [
    lax.slice(
      xp, (0, i, j, 0), (b, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c), (1, sh, sw, 1)
    )
    for i in range(kh)
    for j in range(kw)
  ]


def _phase(k: int, s: int, p: int, r: int) -> tuple[list[int], int]:
  """Taps reaching phase ``r`` (in correlation order) and their offset into ``g``.

  ``dx[s*q + r] = sum_v g[q + offset + v] * w[taps[v]]``.
  """
  c = (r + p) % s
  e = (r + p - c) // s
  taps = list(range(c, k, s))[::-1]
  return taps, e - len(taps) + 1


def interleave_phases(
  g, kernel_hw, strides, padding, input_hw, phase_fn: Callable, channels: int
) -> jax.Array:
  """The loop every adjoint shares: ``phase_fn(g_window, taps_h, taps_w)`` computes one phase.

  ``g_window`` is ``g`` [B, Ho, Wo, C'] padded/cropped so that phase ``(r_h, r_w)``
  of the result is a VALID stride-1 correlation of it with the kernel taps
  ``taps_h x taps_w``. The phases are interleaved into [B, H, W, channels],
  ``(H, W) = input_hw``.
  """
  kh, kw = kernel_hw
  (sh, sw), pads = tuple(strides), _pairs(padding)
  h, w = input_hw
  b, ho, wo, _ = g.shape
  qh, qw = -(-h // sh), -(-w // sw)  # rows/columns per phase (the last ones may be cropped)
  rows = []
  for rh in range(sh):
    taps_h, off_h = _phase(kh, sh, pads[0][0], rh)
    cols = []
    for rw in range(sw):
      taps_w, off_w = _phase(kw, sw, pads[1][0], rw)
      if not taps_h or not taps_w:
        cols.append(jnp.zeros((b, qh, qw, channels), g.dtype))
        continue
      # window[q + v] = g[q + off + v] for q < qh, v < len(taps); negative pads crop.
      hi_h = qh + len(taps_h) - 1 - (ho - off_h)
      hi_w = qw + len(taps_w) - 1 - (wo - off_w)
      config = ((0, 0, 0), (-off_h, hi_h, 0), (-off_w, hi_w, 0), (0, 0, 0))
      window = lax.pad(g, jnp.zeros((), g.dtype), config)
      cols.append(phase_fn(window, taps_h, taps_w))  # [B, qh, qw, channels]
    rows.append(jnp.stack(cols, axis=3).reshape(b, qh, qw * sw, channels))
  dx = jnp.stack(rows, axis=2).reshape(b, qh * sh, qw * sw, channels)  # [B, qh*sh, qw*sw, C]
  return dx[:, :h, :w, :]


def shifted_sum(window, taps_h, taps_w, tap: Callable) -> jax.Array:
  """One phase as shifted adds: ``sum tap(window shifted by (v, u), taps_h[v], taps_w[u])``."""
  qh = window.shape[1] - len(taps_h) + 1
  qw = window.shape[2] - len(taps_w) + 1
  out = None
  for v, i in enumerate(taps_h):
    for u, j in enumerate(taps_w):
      term = tap(window[:, v : v + qh, u : u + qw], i, j)
      out = term if out is None else out + term
  return out


def conv_adjoint(g, kernel, strides, padding, input_hw):
  """The adjoint of ``conv(x, kernel, strides, padding)`` w.r.t. ``x``, applied to ``g``.

  ``g`` [B, Ho, Wo, Cout], ``kernel`` [kh, kw, Cin, Cout] -> [B, H, W, Cin] with
  ``(H, W) = input_hw``, from stride-1 operations on the undilated ``g`` (module
  docstring): :func:`conv_adjoint_narrow` for results of at most
  ``NARROW_CHANNELS`` channels, else :func:`conv_adjoint_phases`.
  """
  if kernel.shape[2] <= NARROW_CHANNELS:
    return conv_adjoint_narrow(g, kernel, strides, padding, input_hw)
  return conv_adjoint_phases(g, kernel, strides, padding, input_hw)


def conv_adjoint_narrow(g, kernel, strides, padding, input_hw):
  """:func:`conv_adjoint` as one matmul of every pixel of ``g`` with every tap (to
  ``kh*kw*Cin`` columns), then shifted adds of its columns, phase by phase."""
  kh, kw, cin, cout = kernel.shape
  b, ho, wo, _ = g.shape
  z = jnp.dot(g.reshape(-1, cout), kernel.reshape(kh * kw * cin, cout).T)
  z = z.reshape(b, ho, wo, kh * kw * cin)  # [B, Ho, Wo, (tap, Cin)]

  def phase(window, taps_h, taps_w):
    def tap(shifted, i, j):  # tap (i, j)'s columns of z
      return shifted[..., (i * kw + j) * cin : (i * kw + j + 1) * cin]

    return shifted_sum(window, taps_h, taps_w, tap)

  return interleave_phases(z, (kh, kw), strides, padding, input_hw, phase, cin)


def conv_adjoint_phases(g, kernel, strides, padding, input_hw):
  """:func:`conv_adjoint` as one stride-1 convolution per phase with exactly its taps."""
  kh, kw, cin, _ = kernel.shape

  def phase(window, taps_h, taps_w):
    sub = kernel[jnp.asarray(taps_h)][:, jnp.asarray(taps_w)]  # [Uh, Uw, Cin, Cout]
    return _conv2d(window, sub.transpose(0, 1, 3, 2), (1, 1), ((0, 0), (0, 0)))  # Cout -> Cin

  return interleave_phases(g, (kh, kw), strides, padding, input_hw, phase, cin)


def kernel_grad(x, g, kernel_shape, strides, padding):
  """``d conv(x, w, strides, padding) / d w`` applied to the output gradient ``g``:
  :func:`kernel_grad_im2col` for kernels (other than 1x1) with at most
  ``IM2COL_MAX_CHANNELS`` input or output channels, else :func:`kernel_grad_xla`."""
  kh, kw, cin, cout = kernel_shape
  if (kh, kw) != (1, 1) and min(cin, cout) <= IM2COL_MAX_CHANNELS:
    return kernel_grad_im2col(x, g, kernel_shape, strides, padding)
  return kernel_grad_xla(x, g, kernel_shape, strides, padding)


def kernel_grad_xla(x, g, kernel_shape, strides, padding):
  """The kernel gradient as XLA derives it from the forward convolution."""
  w0 = jnp.zeros(kernel_shape, x.dtype)
  return jax.vjp(lambda w: _conv2d(x, w, tuple(strides), _pairs(padding)), w0)[1](g)[0]


def kernel_grad_im2col(x, g, kernel_shape, strides, padding):
  """The kernel gradient as one matmul: the input windows stacked channels-first
  ``[kh*kw*Cin, B*Ho*Wo]`` times ``g`` ``[B*Ho*Wo, Cout]``."""
  kh, kw, cin, cout = kernel_shape
  windows = _windows(x, (kh, kw), tuple(strides), _pairs(padding), g.shape[1:3], True)
  patches = jnp.stack(windows).reshape(kh * kw * cin, -1)  # [kh*kw*Cin, B*Ho*Wo]
  return (patches @ g.reshape(-1, cout)).reshape(kernel_shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x, kernel, strides, padding):
  """:func:`_conv2d` whose input gradient is :func:`conv_adjoint` (no dilated operand)."""
  return _conv2d(x, kernel, strides, padding)


def _conv_fwd(x, kernel, strides, padding):
  return _conv2d(x, kernel, strides, padding), (x, kernel)


def _conv_bwd(strides, padding, res, g):
  x, kernel = res
  dx = conv_adjoint(g, kernel, strides, padding, x.shape[1:3])
  dk = kernel_grad(x, g, kernel.shape, strides, padding)
  return dx, dk


_conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_transpose(g, kernel, strides, padding, output_hw):
  """:func:`conv_adjoint` as an operator of its own (a transposed convolution), with gradients.

  ``kernel`` [kh, kw, Cout, Cin] is the kernel of the *forward* convolution that
  maps the result [B, H, W, Cout] back to ``g``'s shape [B, Ho, Wo, Cin].
  """
  return conv_adjoint(g, kernel, strides, padding, output_hw)


def _conv_transpose_fwd(g, kernel, strides, padding, output_hw):
  return conv_adjoint(g, kernel, strides, padding, output_hw), (g, kernel)


def _conv_transpose_bwd(strides, padding, output_hw, res, dy):
  g, kernel = res
  dg = _conv2d(dy, kernel, strides, padding)
  dk = kernel_grad(dy, g, kernel.shape, strides, padding)
  return dg, dk


_conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)
