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

The reported probability is measured on the *untransformed* final image at the
model's input size after saving it as an 8-bit PNG, i.e. on the picture shown.
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

from vision.optimize.common import cross_entropy, total_variation

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


# -- runs (scripts/visualize.py) ----------------------------------------------------------------


def run(config, workdir: str) -> dict:
  """Class (``mode='class'``) or feature (``'feature'``) visualization; PNGs and results.json."""
  import os
  import time

  from tqdm.auto import tqdm

  from vision import viz
  from vision.cli import UserError
  from vision.optimize import common
  from vision.weights import class_names

  t0 = time.time()
  if config.mode not in ("class", "feature"):
    raise UserError(f"config.mode={config.mode!r}; use 'class' or 'feature'.")
  if config.objective not in ("ce", "logit"):
    raise UserError(f"config.objective={config.objective!r}; use 'ce' or 'logit'.")
  if config.param not in PARAMS:
    raise UserError(f"config.param={config.param!r}; use one of {', '.join(PARAMS)}.")
  if config.tv_reduction not in ("sum", "mean"):
    raise UserError(f"config.tv_reduction={config.tv_reduction!r}; use 'sum' or 'mean'.")
  if config.steps < 1:
    raise UserError("config.steps must be at least 1.")
  names = class_names()
  if config.mode == "class":
    targets = [common.imagenet_class(c) for c in common.split_list(config.classes)]
    if not targets:
      raise UserError("config.classes is empty; give e.g. 'Egyptian cat,espresso'.")
    labels = [names[t] for t in targets]
  else:
    try:
      targets = [int(c) for c in common.split_list(config.channels)]
    except ValueError as e:
      raise UserError(f"config.channels={config.channels!r}: give integers like 0,1,2.") from e
    if not targets or min(targets) < 0:
      raise UserError("config.channels needs non-negative channel indices, e.g. 0,1,2.")
    labels = [f"{config.layer}:{c}" for c in targets]

  model, variables, size = common.load_backbone(config.model, config.weights)
  size = config.size or size
  features_fn = common.features_fn(model)
  if config.mode == "feature":
    from vision.models.backbones import feature_names

    shapes = jax.eval_shape(
      features_fn, variables, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    )[1]
    if config.layer not in shapes:
      raise UserError(
        f"{config.model} has no layer {config.layer!r}; layers: "
        f"{', '.join(feature_names(model, size))}."
      )
    width = shapes[config.layer].shape[-1]
    if max(targets) >= width:
      raise UserError(f"layer {config.layer!r} has {width} channels; got channel {max(targets)}.")

  transforms = Transforms(
    jitter=config.jitter,
    scale_min=config.scale_min,
    scale_max=config.scale_max,
    max_angle=config.max_angle,
    enabled=config.transforms,
  )
  os.makedirs(workdir, exist_ok=True)
  rng = jax.random.key(config.seed)
  batch = max(1, config.batch_size)
  images, histories = [], []
  bar = tqdm(
    total=config.steps * -(-len(targets) // batch), desc=config.mode, disable=not config.progress
  )
  for start in range(0, len(targets), batch):
    chunk_targets = targets[start : start + batch]
    if config.mode == "class":
      objective = class_objective(chunk_targets, config.ce_weight, config.objective)
    else:
      objective = feature_objective(config.layer, chunk_targets, config.feature_weight)
    param = ImageParam(
      (len(chunk_targets), size, size, 3), config.param, config.decorrelate, config.decay_power
    )

    last = [0]

    def callback(step, loss, last=last):
      bar.update(step - last[0])
      last[0] = step
      bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

    params, history = optimize_image(
      features_fn,
      variables,
      objective,
      param,
      jax.random.fold_in(rng, start),
      steps=config.steps,
      learning_rate=config.learning_rate,
      tv_weight=config.tv_weight,
      tv_reduction=config.tv_reduction,
      transforms=transforms,
      init_sd=config.init_sd,
      chunk=config.log_every,
      callback=callback,
    )
    images.append(np.asarray(param.to_image(params)))
    histories.append(history)
  bar.close()
  images = np.concatenate(images)

  # Save losslessly at the input size and measure the saved pictures.
  files, saved = [], []
  for i, label in enumerate(labels):
    name = f"{config.mode}_{i}_{common.photo_name(label)}.png"
    saved.append(common.read_png(viz.save_image(os.path.join(workdir, name), images[i])))
    files.append(name)
  saved = np.stack(saved)
  logits, features = jax.jit(features_fn)(variables, jnp.asarray(saved))
  probs = np.asarray(jax.nn.softmax(logits, axis=-1))
  float_logits, _ = jax.jit(features_fn)(variables, jnp.asarray(images))
  float_probs = np.asarray(jax.nn.softmax(float_logits, axis=-1))
  steps_logged = [s for s, _ in histories[0]]
  losses = [
    [s, round(float(np.mean([h[k][1] for h in histories])), 5)] for k, s in enumerate(steps_logged)
  ]

  results = {
    "mode": config.mode,
    "model": config.model,
    "steps": config.steps,
    "param": config.param,
    "decorrelate": config.decorrelate,
    "transforms": config.transforms,
    "objective": config.objective,
    "ce_weight": config.ce_weight,
    "tv_weight": config.tv_weight,
    "tv_reduction": config.tv_reduction,
    "files": files,
    "losses": losses,
    "loss_first": losses[0][1],
    "loss_final": losses[-1][1],
  }
  if config.mode == "class":
    p = [float(probs[i, t]) for i, t in enumerate(targets)]
    results.update(
      {
        "classes": labels,
        "target_probs": {label: round(v, 4) for label, v in zip(labels, p)},
        "target_probs_float": {
          label: round(float(float_probs[i, t]), 4)
          for i, (label, t) in enumerate(zip(labels, targets))
        },
        "min_target_prob": min(p),
        "mean_target_prob": float(np.mean(p)),
        "top": {
          label: [{**r, "prob": round(r["prob"], 4)} for r in common.top_k(probs[i], 3)]
          for i, label in enumerate(labels)
        },
      }
    )
    titles = [f"{label[:20]}: p={v:.2f}" for label, v in zip(labels, p)]
  else:
    act = np.asarray(channel_activation(features, config.layer, targets))
    grey = jnp.full_like(jnp.asarray(saved), 0.5)  # baseline: a uniform grey picture
    grey_act = np.asarray(
      channel_activation(jax.jit(features_fn)(variables, grey)[1], config.layer, targets)
    )
    results.update(
      {
        "layer": config.layer,
        "channels": targets,
        "activation": {label: round(float(a), 4) for label, a in zip(labels, act)},
        "activation_grey": {label: round(float(a), 4) for label, a in zip(labels, grey_act)},
      }
    )
    titles = [f"{label} act={a:.2f}" for label, a in zip(labels, act)]
  viz.labelled_gallery(
    os.path.join(workdir, f"{config.mode}es.png" if config.mode == "class" else "features.png"),
    saved,
    titles,
    ncols=min(len(labels), 5),
  )
  results["seconds"] = round(time.time() - t0, 2)
  common.write_json(os.path.join(workdir, "results.json"), results)
  return results
