"""Depthwise convolutions (one filter per channel, multiplier 1), in two forms.

``kernels='portable'`` is ``lax.conv_general_dilated`` with
``feature_group_count = C``. XLA:CPU lowers such grouped convolutions to a slow
generic path (forward and gradient), so ``kernels='cpu'`` writes the same
function as ``kh*kw`` shifted multiply-adds over the padded input, with custom
gradients (docs/performance.md, change 3 and "Earlier work", has the
measurements):

* **input gradient by phases** (:func:`depthwise_adjoint`): autodiff of the
  strided shifted form pads every tap's gradient with interior zeros and sums
  them, fusions XLA:CPU runs slowly. Each phase of the input gradient is
  instead shifted multiply-adds of the undilated output gradient with the taps
  that reach it (the phase decomposition of :mod:`vision.ops.conv`; stride 1 is
  one phase).
* **stride-1 kernel gradient image by image**: per tap, the sum of a shifted
  window of the input times the output gradient, scanned over the batch one
  image at a time so that an image's ``kh*kw`` windows are read while it is
  still in cache, instead of the whole-batch reductions autodiff produces.
  Strided windows are read strided either way, so stride 2 keeps autodiff's
  kernel gradient.

Both forms keep Flax's grouped-convolution kernel layout ``[kh, kw, 1, C]``, so
parameters and converted weights are shared. tests/test_ops_depthwise.py
compares values and gradients of the two forms.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from vision.ops.conv import DIMENSION_NUMBERS, interleave_phases, shifted_sum
from vision.ops.kernels import pick


def depthwise_conv(x, kernel, strides=(1, 1), padding=((0, 0), (0, 0)), kernels: str | None = None):
  """Depthwise convolution of ``x`` [B, H, W, C] with ``kernel`` [kh, kw, 1, C] and explicit
  ``(lo, hi)`` padding pairs."""
  strides = tuple(strides)
  pads = tuple(tuple(p) for p in padding)
  if pick(kernels) == "portable":
    return lax.conv_general_dilated(
      x,
      kernel,
      window_strides=strides,
      padding=pads,
      dimension_numbers=DIMENSION_NUMBERS,
      feature_group_count=x.shape[-1],
    )
  if strides == (1, 1):
    return _shift_stride1(x, kernel, strides, pads)
  return _shift_strided(x, kernel, strides, pads)


def depthwise_adjoint(g, kernel, strides, padding, input_hw):
  """The adjoint of a depthwise convolution (kernel [kh, kw, 1, C]) w.r.t. its input,
  phase by phase as shifted multiply-adds of the undilated ``g`` [B, Ho, Wo, C]."""

  def phase(window, taps_h, taps_w):
    return shifted_sum(window, taps_h, taps_w, lambda shifted, i, j: shifted * kernel[i, j, 0])

  return interleave_phases(g, kernel.shape[:2], strides, padding, input_hw, phase, g.shape[-1])


def _shift(x, kernel, strides, pads):
  """Depthwise conv as k*k shifted multiply-adds. x [B, H, W, C], kernel [kh, kw, 1, C]."""
  kh, kw = kernel.shape[:2]
  sh, sw = strides
  x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  b, hp, wp, c = x.shape
  oh = (hp - kh) // sh + 1
  ow = (wp - kw) // sw + 1
  # Strided slices ran as fast as (or faster than) a space-to-depth phase split
  # on XLA:CPU, forward and gradient, so stride 2 uses them too.
  out = None
  for i in range(kh):
    for j in range(kw):
      patch = lax.slice(
        x, (0, i, j, 0), (b, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c), (1, sh, sw, 1)
      )
      term = patch * kernel[i, j, 0]  # [B, oh, ow, C]
      out = term if out is None else out + term
  return out


def _kernel_grad_per_image(x, g, kernel_shape, strides, pads):
  """``d/dkernel`` of :func:`_shift`: per tap, sum(shifted window of x * g), image by image."""
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
def _shift_stride1(x, kernel, strides, pads):
  return _shift(x, kernel, strides, pads)


def _shift_fwd(x, kernel, strides, pads):
  return _shift(x, kernel, strides, pads), (x, kernel)


def _shift_stride1_bwd(strides, pads, res, g):
  """Input gradient by phases; kernel gradient image by image."""
  x, kernel = res
  gx = depthwise_adjoint(g, kernel, strides, pads, x.shape[1:3])
  gk = _kernel_grad_per_image(x, g, kernel.shape, strides, pads)
  return gx, gk.astype(kernel.dtype)


_shift_stride1.defvjp(_shift_fwd, _shift_stride1_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _shift_strided(x, kernel, strides, pads):
  return _shift(x, kernel, strides, pads)


def _shift_strided_bwd(strides, pads, res, g):
  """Input gradient by phases; the kernel gradient as autodiff makes it (whole-batch
  reductions: image by image is no faster at stride 2)."""
  x, kernel = res
  gx = depthwise_adjoint(g, kernel, strides, pads, x.shape[1:3])
  _, k_vjp = jax.vjp(lambda k: _shift(x, k, strides, pads), kernel)
  (gk,) = k_vjp(g)
  return gx, gk


_shift_strided.defvjp(_shift_fwd, _shift_strided_bwd)
