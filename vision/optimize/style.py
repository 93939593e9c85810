"""Neural style transfer (Gatys, Ecker & Bethge 2016) with any ``(logits, features)`` backbone.

An image ``x`` is optimized so that

    loss = content_weight * sum_l |F_l(x) - F_l(content)|^2 / |F_l(content)|^2
         + style_weight   * sum_l |G_l(x) - G_l(style)|^2   / |G_l(style)|^2
         + tv_weight      * TV(x)

with ``F_l`` the activations of named layers of a frozen network (inference
mode) and ``G_l = F_l^T F_l / (H W)`` their Gram matrices (channel
correlations, which keep textures and colours but not the layout). Each term is
normalized by the squared norm of its target, so the weights do not depend on
the scale of a backbone's activations and one set of weights serves VGG and
EfficientNet alike. TV is the mean anisotropic L1 total variation.

Optimizers: Adam on the pixels (projected onto [0, 1] after every step,
``param='pixel'``) or L-BFGS (``optax.lbfgs`` with its zoom line search) on
unconstrained logits (``param='sigmoid'``, image = sigmoid(z)). The start is
noise or the content image. Steps run in chunks inside one jitted ``lax.scan``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from vision.optimize.losses import total_variation

# Default layers per backbone family: (content layer, style layers).
DEFAULT_LAYERS = {
  "vgg": (
    "block4_conv2",
    ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
  ),
  "efficientnet_lite": ("stage4", ("stem", "stage1", "stage2", "stage3", "stage4")),
  "mobilenet_v2": ("stage4", ("stem", "stage1", "stage2", "stage3", "stage4")),
  "resnet": ("stage3", ("stem", "stage1", "stage2", "stage3", "stage4")),
}
OPTIMIZERS = ("adam", "lbfgs")
STYLE_PARAMS = ("pixel", "sigmoid")


def gram_matrix(features: jax.Array) -> jax.Array:
  """``[B, H, W, C]`` -> ``[B, C, C]``: ``F^T F / (H W)`` with F the ``[H W, C]`` activations."""
  b, *spatial, c = features.shape
  f = features.reshape(b, -1, c).astype(jnp.float32)
  return jnp.einsum("bnc,bnd->bcd", f, f) / f.shape[1]


def _relative_error(x: jax.Array, target: jax.Array) -> jax.Array:
  """Per-example ``|x - target|^2 / |target|^2``, ``[B]``."""
  axes = tuple(range(1, x.ndim))
  return jnp.sum((x - target) ** 2, axis=axes) / jnp.maximum(jnp.sum(target**2, axis=axes), 1e-12)


def style_targets(
  features_fn: Callable,
  variables,
  content: jax.Array,
  style: jax.Array,
  content_layers: Sequence[str],
  style_layers: Sequence[str],
) -> dict:
  """Content activations and style Gram matrices of ``[1, H, W, 3]`` images."""
  _, fc = features_fn(variables, content)
  _, fs = features_fn(variables, style)
  return {
    "content": {name: fc[name].astype(jnp.float32) for name in content_layers},
    "style": {name: gram_matrix(fs[name]) for name in style_layers},
  }


def style_losses(
  features_fn: Callable,
  variables,
  images: jax.Array,
  targets: dict,
  *,
  content_weight: float = 1.0,
  style_weight: float = 1.0,
  tv_weight: float = 1.0,
  style_layer_weights: Sequence[float] | None = None,
) -> dict[str, jax.Array]:
  """The weighted terms and their sum (``'total'``), each averaged over the batch."""
  _, feats = features_fn(variables, images)
  content = sum(
    _relative_error(feats[n].astype(jnp.float32), t) for n, t in targets["content"].items()
  )
  names = list(targets["style"])
  weights = style_layer_weights or [1.0] * len(names)
  style = sum(
    w * _relative_error(gram_matrix(feats[n]), targets["style"][n]) for w, n in zip(weights, names)
  )
  tv = total_variation(images, "mean")
  terms = {
    "content": content_weight * jnp.mean(content),
    "style": style_weight * jnp.mean(style),
    "tv": tv_weight * jnp.mean(tv),
  }
  terms["total"] = terms["content"] + terms["style"] + terms["tv"]
  return terms


def _to_image(z: jax.Array, param: str) -> jax.Array:
  return jax.nn.sigmoid(z) if param == "sigmoid" else z


def _from_image(x: jax.Array, param: str) -> jax.Array:
  if param == "sigmoid":
    x = jnp.clip(x, 1e-3, 1 - 1e-3)
    return jnp.log(x) - jnp.log1p(-x)
  return x


def stylize(
  features_fn: Callable,
  variables,
  content: jax.Array,
  style: jax.Array,
  *,
  content_layers: Sequence[str],
  style_layers: Sequence[str],
  content_weight: float = 1.0,
  style_weight: float = 10.0,
  tv_weight: float = 1.0,
  style_layer_weights: Sequence[float] | None = None,
  steps: int = 200,
  optimizer: str = "adam",
  learning_rate: float = 0.02,
  param: str = "pixel",
  init: str = "content",
  rng: jax.Array | None = None,
  chunk: int = 10,
  callback: Callable[[int, dict], None] | None = None,
) -> tuple[jax.Array, list[dict]]:
  """Optimizes an image; returns ``(image [1, H, W, 3], [{'step', 'total', 'content', ...}])``.

  ``content`` / ``style``: ``[1, H, W, 3]`` in [0, 1] (the style image may have
  another size). ``init``: ``'content'`` or ``'noise'`` (uniform noise mixed
  50/50 with grey). The record of step ``s`` holds the losses of the image
  after ``s`` updates (step 0: the start).
  """
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}.")
  if param not in STYLE_PARAMS:
    raise ValueError(f"unknown parameterization {param!r}; expected one of {STYLE_PARAMS}.")
  variables = jax.lax.stop_gradient(variables)
  targets = jax.jit(style_targets, static_argnums=(0, 4, 5))(
    features_fn, variables, content, style, tuple(content_layers), tuple(style_layers)
  )
  if init == "content":
    start = content
  elif init == "noise":
    rng = jax.random.key(0) if rng is None else rng
    start = 0.25 + 0.5 * jax.random.uniform(rng, content.shape)
  else:
    raise ValueError(f"unknown init {init!r}; expected 'content' or 'noise'.")
  z = _from_image(jnp.asarray(start, jnp.float32), param)
  weights = dict(
    content_weight=content_weight,
    style_weight=style_weight,
    tv_weight=tv_weight,
    style_layer_weights=style_layer_weights,
  )

  def terms_fn(z):
    return style_losses(features_fn, variables, _to_image(z, param), targets, **weights)

  def value_fn(z):
    return terms_fn(z)["total"]

  if optimizer == "adam":
    opt = optax.adam(learning_rate)
  else:
    opt = optax.lbfgs(learning_rate=None if learning_rate <= 0 else learning_rate)
  opt_state = opt.init(z)

  def aux_fn(z):
    terms = terms_fn(z)
    return terms["total"], terms

  def step(carry, _):
    z, opt_state = carry
    if optimizer == "adam":
      (_, terms), grads = jax.value_and_grad(aux_fn, has_aux=True)(z)
      updates, opt_state = opt.update(grads, opt_state, z)
    else:
      terms = terms_fn(z)
      value, grads = optax.value_and_grad_from_state(value_fn)(z, state=opt_state)
      updates, opt_state = opt.update(
        grads, opt_state, z, value=value, grad=grads, value_fn=value_fn
      )
    z = optax.apply_updates(z, updates)
    if param == "pixel":
      z = jnp.clip(z, 0.0, 1.0)
    return (z, opt_state), terms  # the losses of the image before this update

  @functools.partial(jax.jit, static_argnames="length")
  def run_chunk(z, opt_state, length):
    (z, opt_state), terms = jax.lax.scan(step, (z, opt_state), None, length=length)
    return z, opt_state, terms

  history = []
  done = 0
  while done < steps:
    length = min(chunk, steps - done)
    z, opt_state, terms = run_chunk(z, opt_state, length)
    terms = jax.device_get(terms)
    for i in range(length):
      history.append({"step": done + i, **{k: float(v[i]) for k, v in terms.items()}})
    done += length
    if callback is not None:
      callback(done, history[-1])
  final = {k: float(v) for k, v in jax.jit(terms_fn)(z).items()}
  history.append({"step": steps, **final})
  return _to_image(z, param), history
