"""Convolutions whose gradients XLA:CPU computes fast: strided convolutions and transposed ones.

XLA differentiates ``lax.conv_general_dilated`` into two more convolutions.
For a **strided** convolution the input gradient is a convolution over the
output gradient *dilated with zeros* (``lhs_dilate``), which XLA:CPU sends to
a slow generic path: at the DCGAN discriminator's 5x5 stride-2 layer
(256 x 14x14x64 -> 7x7x128) it takes ~200 ms, 5x the forward pass
(docs/performance.md). A transposed convolution is the same operator the
other way round, so its forward pass has the same problem.

:func:`conv_adjoint` computes that operator (the adjoint of a strided
convolution with respect to its input) without dilation: each of the
``s_h * s_w`` *phases* of the result (the pixels ``m`` with ``m % s = r``) is an
ordinary stride-1 convolution of the undilated operand with the kernel taps
``i`` that reach that phase (``i = s*u + c`` for one ``c``), and the phases are
interleaved. Every tap is used exactly once: no multiplications by zeros, unlike
the padded sub-pixel form (which for a 3x3 stride-2 kernel computes 16 taps
instead of 9).

:func:`conv` (a strided or stride-1 convolution) and :func:`conv_transpose` are
``jax.custom_vjp`` pairs built from three pieces: ``lax.conv_general_dilated``
(stride ``s``, fast in XLA:CPU), :func:`conv_adjoint`, and
:func:`kernel_grad`. Their values and gradients equal
``lax.conv_general_dilated`` / ``lax.conv_transpose`` (tests/test_conv.py).

Derivation, one spatial axis. ``y[o] = sum_i x[s*o + i - p] w[i]`` (``p`` the
low padding). Its adjoint: ``dx[m] = sum_{o, i: s*o + i - p = m} g[o] w[i]``.
For ``m = s*q + r``: ``i = s*(q - o + e) + c`` with ``c = (r + p) mod s`` and
``e = (r + p - c) / s``; with ``u = q - o + e``,
``dx[s*q + r] = sum_u g[q + e - u] w[s*u + c]``: a stride-1 correlation of ``g``
with the taps ``c, c + s, ...`` in reverse order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
KERNEL_GRAD_IMPLS = ("auto", "patches", "taps", "xla")
# At most this many result channels, conv_adjoint multiplies by every tap first
# (one matmul), then adds shifted windows, instead of a convolution per phase.
NARROW_CHANNELS = 4
# How conv_adjoint computes wide results (see its docstring): "rows" (one
# convolution per row phase), "one_conv" (one convolution over all phases, when it
# multiplies by at most ADJOINT_ONE_CONV_MAX_OVERHEAD times more zeros than the
# phase-exact form) or "phases" (one convolution per phase). A switch for
# benchmarks and tests.
ADJOINT_FORMS = ("rows", "one_conv", "phases")
ADJOINT_FORM = "phases"
ADJOINT_ONE_CONV_MAX_OVERHEAD = 2.0
# One-input-channel kernels with at most this many taps: shifted multiply-adds
# instead of an im2col matmul (see conv2d).
SHIFTED_FMA_MAX_TAPS = 9

Padding = Sequence[tuple[int, int]]


def _pairs(padding: Padding) -> tuple[tuple[int, int], ...]:
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def conv2d(x, kernel, strides=(1, 1), padding=((0, 0), (0, 0))):
  """2D convolution ``[B, H, W, Cin] * [kh, kw, Cin, Cout]``; 1x1 kernels as one matmul.

  A 1x1 convolution is a matmul over the channels. XLA:CPU's convolution path
  runs it 3-10x slower than its dot, forward and gradients (measured on the
  pointwise convolutions of EfficientNet-Lite0, docs/performance.md), so
  unpadded 1x1 kernels are computed as ``x @ kernel`` (after subsampling for
  strides). Same function, same parameters. Kernels over one input channel
  are one matmul over the stacked windows (im2col) on CPU; other kernels use
  ``lax.conv_general_dilated``.
  """
  pads = _pairs(padding)
  kh, kw, cin, cout = kernel.shape
  if (kh, kw) == (1, 1) and all(p == (0, 0) for p in pads):
    sh, sw = strides
    if (sh, sw) != (1, 1):
      x = x[:, ::sh, ::sw, :]  # [B, ceil(H/sh), ceil(W/sw), Cin]
    b, h, w, _ = x.shape
    y = jnp.dot(x.reshape(b * h * w, cin), kernel.reshape(cin, cout))  # [B*H*W, Cout]
    return y.reshape(b, h, w, cout)
  if cin == 1 and jax.default_backend() == "cpu":
    # One input channel (grey images, the gradient of a 1-channel output).
    # XLA:CPU's convolution is slow here (docs/performance.md). Up to
    # SHIFTED_FMA_MAX_TAPS taps: one fused loop of broadcast multiply-adds of
    # the shifted windows (2-3x faster: a matmul with K = 9 is memory-bound on
    # its output); more taps: the windows side by side and one matmul (im2col).
    # With 3 channels (an RGB stem) both are slower than XLA's convolution.
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


def output_size(n: int, k: int, s: int, pad: tuple[int, int]) -> int:
  """Output length of a convolution along one axis."""
  return (n + pad[0] + pad[1] - k) // s + 1


def _phase(k: int, s: int, p: int, r: int) -> tuple[list[int], int]:
  """Taps reaching phase ``r`` (in correlation order) and their offset into ``g``.

  ``dx[s*q + r] = sum_v g[q + offset + v] * w[taps[v]]``.
  """
  c = (r + p) % s
  e = (r + p - c) // s
  taps = list(range(c, k, s))[::-1]
  return taps, e - len(taps) + 1


def _adjoint_phases(g, kernel_hw, strides, padding, input_hw, phase_fn, channels):
  """Shared loop of the adjoints: ``phase_fn(g_window, taps_h, taps_w)`` computes one phase.

  ``g_window`` is ``g`` padded/cropped so that phase ``(r_h, r_w)`` of the result is a
  VALID stride-1 correlation of it with the kernel taps ``taps_h x taps_w``.
  Phases are interleaved into [B, H, W, channels].
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


def _shifted_sum(window, taps_h, taps_w, tap):
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
  """The adjoint of ``conv2d(x, kernel, strides, padding)`` w.r.t. ``x``, applied to ``g``.

  ``g`` [B, Ho, Wo, Cout], ``kernel`` [kh, kw, Cin, Cout] -> [B, H, W, Cin] with
  ``(H, W) = input_hw``. Computed from stride-1 convolutions of the undilated
  ``g`` (see the module doc), in the form ``ADJOINT_FORM`` names: ``'phases'``
  (the default: one convolution per phase with exactly its taps), ``'rows'``
  (one per row phase, :func:`_adjoint_rows`) or ``'one_conv'``
  (:func:`_adjoint_one_conv`). Results of at most ``NARROW_CHANNELS`` channels
  take a matmul and shifted adds instead. docs/performance.md has the timings
  behind the choice.
  """

  kh, kw, cin, cout = kernel.shape
  if cin <= NARROW_CHANNELS:
    # Few result channels: a convolution to Cin <= 4 channels is a matmul with
    # <= 4 columns, slow on XLA:CPU. Multiply every pixel of g by every tap
    # first (one matmul to kh*kw*Cin columns), then add shifted windows.
    b, ho, wo, _ = g.shape
    z = jnp.dot(g.reshape(-1, cout), kernel.reshape(kh * kw * cin, cout).T)
    z = z.reshape(b, ho, wo, kh * kw * cin)  # [B, Ho, Wo, (tap, Cin)]

    def phase(window, taps_h, taps_w):
      def tap(shifted, i, j):  # tap (i, j)'s columns of z
        return shifted[..., (i * kw + j) * cin : (i * kw + j + 1) * cin]

      return _shifted_sum(window, taps_h, taps_w, tap)

    return _adjoint_phases(z, (kh, kw), strides, padding, input_hw, phase, cin)

  if ADJOINT_FORM == "rows":
    return _adjoint_rows(g, kernel, strides, padding, input_hw)
  if (
    ADJOINT_FORM == "one_conv" and _tap_overhead((kh, kw), strides) <= ADJOINT_ONE_CONV_MAX_OVERHEAD
  ):
    return _adjoint_one_conv(g, kernel, strides, padding, input_hw)

  def phase(window, taps_h, taps_w):
    sub = kernel[jnp.asarray(taps_h)][:, jnp.asarray(taps_w)]  # [Uh, Uw, Cin, Cout]
    return conv2d(window, sub.transpose(0, 1, 3, 2))  # Cout -> Cin

  return _adjoint_phases(g, (kh, kw), strides, padding, input_hw, phase, cin)


def _phase_table(k: int, s: int, p: int) -> tuple[np.ndarray, int]:
  """All phases' taps on one common offset grid: ``(index [T, s], offset)``.

  ``index[t, r]`` is the tap phase ``r`` applies at ``g[q + offset + t]``, or
  ``k`` (a zero tap) where it has none.
  """
  phases = [_phase(k, s, p, r) for r in range(s)]
  start = min(off for taps, off in phases if taps)
  end = max(off + len(taps) for taps, off in phases if taps)
  index = np.full((end - start, s), k, np.int32)
  for r, (taps, off) in enumerate(phases):
    for v, tap in enumerate(taps):
      index[off - start + v, r] = tap
  return index, start


def _tap_overhead(kernel_hw, strides) -> float:
  """Multiplications of the one-convolution adjoint over those of the phase-exact one."""
  overhead = 1.0
  for k, s in zip(kernel_hw, strides):
    overhead *= -(-k // s) * s / k  # every phase padded to ceil(k/s) taps
  return overhead


def _adjoint_one_conv(g, kernel, strides, padding, input_hw):
  """:func:`conv_adjoint` as *one* stride-1 convolution to ``s*s*Cin`` channels, then
  depth-to-space: phases with fewer taps get zero taps (``_tap_overhead`` more
  multiplications), but XLA:CPU runs one wide convolution faster than four narrow
  ones when the overhead is small (5x5 stride 2: 36 taps for 25; 3x3 stride 2: 16 for 9,
  still 3% faster over the whole VAE step)."""
  kh, kw, cin, cout = kernel.shape
  (sh, sw), pads = tuple(strides), _pairs(padding)
  h, w = input_hw
  b, ho, wo, _ = g.shape
  qh, qw = -(-h // sh), -(-w // sw)
  index_h, off_h = _phase_table(kh, sh, pads[0][0])
  index_w, off_w = _phase_table(kw, sw, pads[1][0])
  th, tw = index_h.shape[0], index_w.shape[0]
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # index k: a zero tap
  taps = padded[index_h[:, :, None, None], index_w[None, None, :, :]]  # [Th, sh, Tw, sw, Cin, Cout]
  taps = taps.transpose(0, 2, 5, 1, 3, 4).reshape(th, tw, cout, sh * sw * cin)
  config = (
    (0, 0, 0),
    (-off_h, qh + th - 1 - (ho - off_h), 0),
    (-off_w, qw + tw - 1 - (wo - off_w), 0),
    (0, 0, 0),
  )
  window = lax.pad(g, jnp.zeros((), g.dtype), config)
  y = conv2d(window, taps)  # [B, qh, qw, sh*sw*Cin]
  y = y.reshape(b, qh, qw, sh, sw, cin).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, qh * sh, qw * sw, cin)[:, :h, :w, :]


def _adjoint_rows(g, kernel, strides, padding, input_hw):
  """:func:`conv_adjoint` as one stride-1 convolution per *row* phase ``r_h``.

  Each convolution computes all ``s_w`` column phases of its rows at once (to
  ``s_w*Cin`` channels, column taps padded to ``ceil(kw/s_w)``: 12 multiplications
  for a 3x3 stride-2 kernel's 9, 30 for 5x5's 25), with exactly the row taps of its
  phase. Its output [B, qh, qw, s_w*Cin] is already the rows of the result in
  memory order, so interleaving is one concatenation of whole rows, where the
  single convolution's depth-to-space moves every pixel (a transpose that XLA:CPU
  runs at a few GB/s, docs/performance.md).
  """
  kh, kw, cin, cout = kernel.shape
  (sh, sw), pads = tuple(strides), _pairs(padding)
  h, w = input_hw
  b, ho, wo, _ = g.shape
  qh, qw = -(-h // sh), -(-w // sw)
  index_w, off_w = _phase_table(kw, sw, pads[1][0])
  tw = index_w.shape[0]
  padded = jnp.pad(kernel, ((0, 0), (0, 1), (0, 0), (0, 0)))  # column index kw: a zero tap
  rows = []
  for rh in range(sh):
    taps_h, off_h = _phase(kh, sh, pads[0][0], rh)
    if not taps_h:
      rows.append(jnp.zeros((b, qh, qw, sw * cin), g.dtype))
      continue
    sub = padded[np.asarray(taps_h)[:, None, None], index_w[None]]  # [Uh, Tw, sw, Cin, Cout]
    sub = sub.transpose(0, 1, 4, 2, 3).reshape(len(taps_h), tw, cout, sw * cin)
    config = (
      (0, 0, 0),
      (-off_h, qh + len(taps_h) - 1 - (ho - off_h), 0),
      (-off_w, qw + tw - 1 - (wo - off_w), 0),
      (0, 0, 0),
    )
    window = lax.pad(g, jnp.zeros((), g.dtype), config)
    rows.append(conv2d(window, sub))  # [B, qh, qw, sw*Cin]: row phase rh, columns interleaved
  y = jnp.stack(rows, axis=2).reshape(b, qh * sh, qw * sw, cin)
  return y[:, :h, :w, :]


def depthwise_adjoint(g, kernel, strides, padding, input_hw):
  """The adjoint of a depthwise convolution (kernel [kh, kw, 1, C]) w.r.t. its input.

  Per phase of the result, shifted multiply-adds of the undilated ``g``: on
  XLA:CPU, autodiff of the strided shifted form instead pads every tap's
  gradient with interior zeros, and that fusion was 5-10x slower
  (EfficientNet-Lite0's stride-2 layers, docs/performance.md).
  """

  def phase(window, taps_h, taps_w):
    return _shifted_sum(window, taps_h, taps_w, lambda shifted, i, j: shifted * kernel[i, j, 0])

  return _adjoint_phases(g, kernel.shape[:2], strides, padding, input_hw, phase, g.shape[-1])


def default_kernel_grad_impl(kernel_shape, strides) -> str:
  """How :func:`kernel_grad` computes a kernel gradient on this backend (measured on XLA:CPU).

  XLA's own kernel-gradient convolution is the fastest for most layers (with
  the package's XLA:CPU default, see ``vision/__init__.py``: e.g. 88 ms for the
  DCGAN generator's 5x5 256->128 layer at batch 256, where one matmul per tap,
  ``'taps'``, takes 314 ms transposing its windows); one im2col matmul
  (``'patches'``) is a little faster for layers with 1-4 input or output
  channels (the DCGAN's first and last layers: 2.7 vs 3.5 ms).
  docs/performance.md has the measurements.
  """
  del strides
  kh, kw, cin, cout = kernel_shape
  if jax.default_backend() == "cpu" and (kh, kw) != (1, 1) and min(cin, cout) <= 4:
    return "patches"
  return "xla"


def _windows(x, kernel_hw, strides, padding, out_hw, channels_first=False):
  """The input window each kernel tap meets, tap by tap: ``[B, Ho, Wo, C]`` each
  (``[C, B, Ho, Wo]`` with ``channels_first``)."""
  kh, kw = kernel_hw
  (sh, sw), (ho, wo) = strides, out_hw
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
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


def kernel_grad(x, g, kernel_shape, strides, padding, impl="auto"):
  """``d conv2d(x, w, strides, padding) / d w`` applied to the output gradient ``g``.

  ``impl``: ``'xla'`` (XLA's kernel-gradient convolution), ``'taps'`` (one
  matmul per tap, contracting batch and space), ``'patches'`` (the windows
  stacked channels-first, one matmul), ``'auto'`` (:func:`default_kernel_grad_impl`).
  """
  kh, kw, cin, cout = kernel_shape
  strides, pads = tuple(strides), _pairs(padding)
  if impl == "auto":
    impl = default_kernel_grad_impl(kernel_shape, strides)
  if impl == "xla":
    w0 = jnp.zeros(kernel_shape, x.dtype)
    return jax.vjp(lambda w: conv2d(x, w, strides, pads), w0)[1](g)[0]
  out_hw = g.shape[1:3]
  if impl == "taps":
    taps = [
      lax.dot_general(window, g, (((0, 1, 2), (0, 1, 2)), ((), ())))  # [Cin, Cout]
      for window in _windows(x, (kh, kw), strides, pads, out_hw)
    ]
    return jnp.stack(taps).reshape(kernel_shape)
  if impl == "patches":
    windows = _windows(x, (kh, kw), strides, pads, out_hw, channels_first=True)
    patches = jnp.stack(windows).reshape(kh * kw * cin, -1)  # [kh*kw*Cin, B*Ho*Wo]
    return (patches @ g.reshape(-1, cout)).reshape(kernel_shape)
  raise ValueError(f"unknown kernel-gradient impl {impl!r}; choose from {KERNEL_GRAD_IMPLS}.")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv(x, kernel, strides=(1, 1), padding=((0, 0), (0, 0)), kernel_grad_impl="auto"):
  """``conv2d`` whose input gradient is :func:`conv_adjoint` (no dilated operand)."""
  return conv2d(x, kernel, strides, padding)


def _conv_fwd(x, kernel, strides, padding, kernel_grad_impl):
  return conv2d(x, kernel, strides, padding), (x, kernel)


def _conv_bwd(strides, padding, kernel_grad_impl, res, g):
  x, kernel = res
  dx = conv_adjoint(g, kernel, strides, padding, x.shape[1:3])
  dk = kernel_grad(x, g, kernel.shape, strides, padding, kernel_grad_impl)
  return dx, dk


conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def conv_transpose(g, kernel, strides, padding, output_hw, kernel_grad_impl="auto"):
  """:func:`conv_adjoint` as an operator of its own (a transposed convolution), with gradients.

  ``kernel`` [kh, kw, Cout, Cin] is the kernel of the *forward* convolution that
  maps the result [B, H, W, Cout] back to ``g``'s shape [B, Ho, Wo, Cin].
  """
  return conv_adjoint(g, kernel, strides, padding, output_hw)


def _conv_transpose_fwd(g, kernel, strides, padding, output_hw, kernel_grad_impl):
  return conv_adjoint(g, kernel, strides, padding, output_hw), (g, kernel)


def _conv_transpose_bwd(strides, padding, output_hw, kernel_grad_impl, res, dy):
  g, kernel = res
  dg = conv2d(dy, kernel, strides, padding)
  dk = kernel_grad(dy, g, kernel.shape, strides, padding, kernel_grad_impl)
  return dg, dk


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


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


IMPLS = ("auto", "phase", "xla")


def resolve_impl(impl: str) -> str:
  """``'auto'``: ``'phase'`` (the custom gradients above) on CPU, ``'xla'`` elsewhere."""
  if impl not in IMPLS:
    raise ValueError(f"unknown convolution impl {impl!r}; choose one of {', '.join(IMPLS)}.")
  if impl == "auto":
    return "phase" if jax.default_backend() == "cpu" else "xla"
  return impl


def convolve(x, kernel, strides=(1, 1), padding=((0, 0), (0, 0)), impl="auto"):
  """A convolution (NHWC, HWIO) computed by ``impl``: ``'phase'`` (:func:`conv`) or ``'xla'``."""
  kh, kw = kernel.shape[:2]
  pointwise = (kh, kw) == (1, 1) and all(tuple(p) == (0, 0) for p in padding)
  if pointwise or resolve_impl(impl) == "xla":
    return conv2d(x, kernel, strides, padding)
  return conv(x, kernel, tuple(strides), _pairs(padding))


def transpose_same(x, kernel, strides, impl="auto"):
  """``lax.conv_transpose(x, kernel, strides, 'SAME')`` (flax's ``ConvTranspose`` kernel layout).

  ``kernel`` [kh, kw, Cin, Cout]. With ``'phase'`` it is :func:`conv_transpose`
  of the flipped kernel: one stride-1 convolution per output phase, every tap
  used once.
  """
  sh, sw = strides
  kh, kw = kernel.shape[:2]
  if resolve_impl(impl) == "xla":
    return lax.conv_transpose(x, kernel, (sh, sw), "SAME", dimension_numbers=DIMENSION_NUMBERS)
  padding = (same_transpose_padding(kh, sh), same_transpose_padding(kw, sw))
  forward_kernel = kernel[::-1, ::-1].transpose(0, 1, 3, 2)  # [kh, kw, Cout, Cin]
  _, h, w, _ = x.shape
  return conv_transpose(x, forward_kernel, (sh, sw), padding, (sh * h, sw * w))


class Conv(nn.Module):
  """``nn.Conv`` for 2-D NHWC inputs with the convolution computed by :func:`convolve`.

  Same parameters (``kernel`` [kh, kw, Cin, Cout], ``bias`` [Cout]), defaults and
  padding rules ('SAME', 'VALID' or explicit pairs) as ``nn.Conv``, so the two
  are interchangeable in a checkpoint.
  """

  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: int | Sequence[int] = 1
  padding: str | Sequence[tuple[int, int]] = "SAME"
  use_bias: bool = True
  impl: str = "auto"
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ks = tuple(self.kernel_size)
    st = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    if isinstance(self.padding, str):
      pads = lax.padtype_to_pads(x.shape[1:3], ks, st, self.padding)
    else:
      pads = self.padding
    kernel = self.param(
      "kernel", self.kernel_init, (*ks, x.shape[-1], self.features), self.param_dtype
    )
    bias = (
      self.param("bias", self.bias_init, (self.features,), self.param_dtype)
      if self.use_bias
      else None
    )
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = convolve(x, kernel, st, pads, self.impl)
    return y if bias is None else y + bias
