"""Class and feature visualization: images optimized from noise to excite a network.

The recipe (Simonyan et al. 2014; Mordvintsev, Olah et al., "Feature
Visualization", Distill 2017 / lucid):

* **Objective** - class: ``ce_weight * CE(logits, target)`` (10 by default);
  feature: ``-mean activation`` of one channel of a named layer; plus
  ``tv_weight * TV(image)`` (0.005), the anisotropic L1 total variation of the
  [0, 1] image *averaged* over neighbour pairs (``tv_reduction='mean'``; ``'sum'``
  is ``tf.image.total_variation``: with 0.005 that term dominates as soon as
  the cross-entropy saturates and blurs the picture into blobs). ``'logit'``
  (minus the target logit, lucid's objective) is an option that never saturates.
* **Parameterization** - the image is ``sigmoid(C @ irfft2(s * spectrum) / 4)``:
  a Fourier spectrum scaled by ``1 / frequency`` (so every frequency has about
  the same effect on the loss and high-frequency noise is not favoured), and a
  fixed colour-decorrelation matrix ``C`` (the square root of ImageNet's colour
  covariance, as in lucid), squashed into (0, 1) by a sigmoid. ``'pixel'``
  optimizes logits of the pixels directly (for comparison).
* **Transformation robustness** - each step the network sees the image under a
  random affine map: jitter (a shift of up to ``jitter`` pixels, 16), scale
  ``[scale_min, scale_max]`` (0.8-1.2) and rotation ``+-max_angle`` degrees (15), resampled
  bilinearly with reflected borders.
* **Adam** on the parameters; several images (classes, channels) are optimized
  as one batch, independently (the loss is a sum over the batch).

The run from a config, which saves and measures the pictures, is
:mod:`vision.drivers.visualize`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision.optimize.losses import cross_entropy, total_variation

# Square root of the colour covariance of ImageNet images (lucid's
# color_correlation_svd_sqrt); its columns are normalized by the largest norm.
COLOR_CORRELATION_SVD_SQRT = np.asarray(
  [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32
)
COLOR_MATRIX = COLOR_CORRELATION_SVD_SQRT / np.max(
  np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0)
)
PARAMS = ("fourier", "pixel")


def fft_scale(height: int, width: int, decay_power: float = 1.0) -> np.ndarray:
  """``[H, W // 2 + 1]`` spectrum scale ``1 / max(f, 1 / max(H, W)) ** decay_power``."""
  fy = np.fft.fftfreq(height)[:, None]
  fx = np.fft.rfftfreq(width)[None, :]
  freqs = np.sqrt(fx * fx + fy * fy)
  return (1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ImageParam:
  """How a batch of images ``[B, H, W, C]`` in (0, 1) is made from free parameters.

  ``kind='fourier'``: parameters ``[B, C, H, W // 2 + 1, 2]`` (real, imaginary
  part of the spectrum before scaling); ``'pixel'``: ``[B, H, W, C]``. With
  ``decorrelate`` the channels are mixed by :data:`COLOR_MATRIX` (3 channels only).
  """

  shape: tuple[int, int, int, int]
  kind: str = "fourier"
  decorrelate: bool = True
  decay_power: float = 1.0

  def __post_init__(self):
    if self.kind not in PARAMS:
      raise ValueError(f"unknown image parameterization {self.kind!r}; expected one of {PARAMS}.")
    if self.decorrelate and self.shape[-1] != 3:
      raise ValueError("colour decorrelation needs 3 channels; set decorrelate=False.")

  @property
  def param_shape(self) -> tuple[int, ...]:
    b, h, w, c = self.shape
    return (b, c, h, w // 2 + 1, 2) if self.kind == "fourier" else (b, h, w, c)

  def init(self, rng: jax.Array, sd: float = 0.01) -> jax.Array:
    return sd * jax.random.normal(rng, self.param_shape, jnp.float32)

  def _scale(self):
    _, h, w, _ = self.shape
    return jnp.asarray(fft_scale(h, w, self.decay_power))

  def to_logits(self, params: jax.Array) -> jax.Array:
    """The pre-sigmoid image ``[B, H, W, C]``."""
    if self.kind == "fourier":
      _, h, w, _ = self.shape
      spectrum = jax.lax.complex(params[..., 0], params[..., 1]) * self._scale()
      x = jnp.fft.irfft2(spectrum, s=(h, w), norm="ortho")  # [B, C, H, W]
      x = jnp.transpose(x, (0, 2, 3, 1)) / 4.0
    else:
      x = params
    if self.decorrelate:
      x = x @ jnp.asarray(COLOR_MATRIX.T)
    return x

  def to_image(self, params: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(self.to_logits(params))

  def from_image(self, images: jax.Array, margin: float = 1e-4) -> jax.Array:
    """Parameters whose image is ``images`` (clipped into ``[margin, 1 - margin]``)."""
    x = jnp.clip(jnp.asarray(images, jnp.float32), margin, 1 - margin)
    x = jnp.log(x) - jnp.log1p(-x)  # logit
    if self.decorrelate:
      x = x @ jnp.asarray(np.linalg.inv(COLOR_MATRIX.T))
    if self.kind == "pixel":
      return x
    x = jnp.transpose(x, (0, 3, 1, 2)) * 4.0
    spectrum = jnp.fft.rfft2(x, norm="ortho") / self._scale()
    return jnp.stack([spectrum.real, spectrum.imag], axis=-1).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class Transforms:
  """Random jitter (pixels), scale and rotation (degrees) applied to every image each step."""

  jitter: float = 16.0
  scale_min: float = 0.8
  scale_max: float = 1.2
  max_angle: float = 15.0
  enabled: bool = True


def affine_resample(
  images: jax.Array, angle: jax.Array, scale: jax.Array, shift: jax.Array
) -> jax.Array:
  """Rotates (radians), scales and shifts (pixels, ``[B, 2]``) each image about its centre.

  Bilinear resampling with reflected borders; the output has the input's size.
  """
  _, h, w, _ = images.shape
  yy, xx = jnp.meshgrid(
    jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
  )
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0

  def one(image, a, s, t):
    cos, sin = jnp.cos(a), jnp.sin(a)
    y, x = yy - cy, xx - cx
    src_y = (cos * y - sin * x) / s + cy + t[0]
    src_x = (sin * y + cos * x) / s + cx + t[1]
    sample = lambda channel: jax.scipy.ndimage.map_coordinates(  # noqa: E731
      channel, [src_y, src_x], order=1, mode="reflect"
    )
    return jax.vmap(sample, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(one)(images, angle, scale, shift)


def random_transform(rng: jax.Array, images: jax.Array, transforms: Transforms) -> jax.Array:
  """A random affine map (see :class:`Transforms`) per image."""
  if not transforms.enabled:
    return images
  b = images.shape[0]
  k1, k2, k3 = jax.random.split(rng, 3)
  max_angle = math.radians(transforms.max_angle)
  angle = jax.random.uniform(k1, (b,), minval=-max_angle, maxval=max_angle)
  scale = jax.random.uniform(k2, (b,), minval=transforms.scale_min, maxval=transforms.scale_max)
  shift = jax.random.uniform(k3, (b, 2), minval=-transforms.jitter, maxval=transforms.jitter)
  return affine_resample(images, angle, scale, shift)


# -- objectives ---------------------------------------------------------------------------------


def class_objective(targets, weight: float = 10.0, kind: str = "ce"):
  """``objective(logits, features) -> [B]``: ``weight *`` cross-entropy of ``targets``.

  ``kind='logit'``: minus the target's logit instead (lucid's objective; it does
  not saturate once the probability is near 1).
  """
  targets = jnp.asarray(targets, jnp.int32)
  if kind == "ce":
    return lambda logits, features: weight * cross_entropy(logits, targets)
  if kind == "logit":
    return lambda logits, features: (
      -weight * jnp.take_along_axis(logits.astype(jnp.float32), targets[:, None], axis=-1)[:, 0]
    )
  raise ValueError(f"unknown class objective {kind!r}; expected 'ce' or 'logit'.")


def channel_activation(features: dict, layer: str, channels) -> jax.Array:
  """Mean activation ``[B]`` of ``channels[b]`` of ``features[layer]`` for image ``b``."""
  act = features[layer].astype(jnp.float32)  # [B, H, W, C]
  act = act.mean(axis=tuple(range(1, act.ndim - 1)))  # [B, C]
  return jnp.take_along_axis(act, jnp.asarray(channels, jnp.int32)[:, None], axis=-1)[:, 0]


def feature_objective(layer: str, channels, weight: float = 1.0):
  """``objective(logits, features) -> [B]``: minus the channel's mean activation."""
  return lambda logits, features: -weight * channel_activation(features, layer, channels)


# -- the optimization ---------------------------------------------------------------------------


def optimize_image(
  features_fn: Callable,
  variables,
  objective: Callable,
  param: ImageParam,
  rng: jax.Array,
  *,
  steps: int = 256,
  learning_rate: float = 0.05,
  tv_weight: float = 0.005,
  tv_reduction: str = "mean",
  transforms: Transforms = Transforms(),
  init_sd: float = 0.01,
  init_params: jax.Array | None = None,
  chunk: int = 16,
  callback: Callable[[int, float], None] | None = None,
) -> tuple[jax.Array, list[tuple[int, float]]]:
  """Adam on the image parameters; returns ``(params, [(step, mean loss)])``.

  ``features_fn(variables, images) -> (logits, features)`` (frozen, inference
  mode); ``objective(logits, features) -> [B]`` is minimized together with
  ``tv_weight * TV``. Steps run ``chunk`` at a time inside one jitted
  ``lax.scan``; ``callback(step, loss)`` is called after each chunk.
  """
  init_rng, rng = jax.random.split(rng)
  params = param.init(init_rng, init_sd) if init_params is None else init_params
  optimizer = optax.adam(learning_rate)
  opt_state = optimizer.init(params)
  variables = jax.lax.stop_gradient(variables)

  def loss_fn(params, key):
    image = param.to_image(params)
    logits, features = features_fn(variables, random_transform(key, image, transforms))
    per_image = objective(logits, features) + tv_weight * total_variation(image, tv_reduction)
    return per_image.sum(), per_image.mean()

  def step(carry, key):
    params, opt_state = carry
    (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  @functools.partial(jax.jit, static_argnames="length")
  def run_chunk(params, opt_state, key, length):
    keys = jax.random.split(key, length)
    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys)
    return params, opt_state, losses

  history = []
  done = 0
  while done < steps:
    length = min(chunk, steps - done)
    params, opt_state, losses = run_chunk(params, opt_state, jax.random.fold_in(rng, done), length)
    done += length
    history.append((done, float(losses[-1])))
    if callback is not None:
      callback(done, float(losses[-1]))
  return params, history
