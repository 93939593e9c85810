"""The style-transfer run of ``experiments/stylize.py``: a photo in the style of another.

``run(config, workdir)`` optimizes ``config.content`` towards the style of
``config.style`` with :func:`vision.optimize.style.stylize` and writes
``stylized.png`` (lossless, at the working size), ``content.png``,
``style.png``, ``style_transfer.png`` (content | style | result) and
``results.json`` (losses every ``log_every`` steps, seconds).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from vision import validate, viz
from vision.drivers import inputs
from vision.errors import ConfigError
from vision.models.backbones import backbone_info, feature_names
from vision.ops import kernels
from vision.optimize.frozen import features_fn as frozen_features_fn
from vision.optimize.style import DEFAULT_LAYERS, OPTIMIZERS, STYLE_PARAMS, stylize
from vision.train.writers import write_json


def _layers(config) -> tuple[list[str], list[str], list[float]]:
  """Content layers, style layers and style-layer weights (``''``: the family's defaults)."""
  try:
    family = backbone_info(config.model).family
  except ValueError as e:
    raise ConfigError(str(e)) from e
  default_content, default_style = DEFAULT_LAYERS.get(family, ("", ()))
  content_layers = inputs.split_list(config.content_layers) or [default_content]
  style_layers = inputs.split_list(config.style_layers) or list(default_style)
  style_layer_weights = [
    inputs.parse_number(w, "config.style_layer_weights")
    for w in inputs.split_list(config.style_layer_weights)
  ]
  if style_layer_weights and len(style_layer_weights) != len(style_layers):
    raise ConfigError(
      f"--config.style_layer_weights has {len(style_layer_weights)} values for "
      f"{len(style_layers)} style layers; give one weight per layer, or '' for 1 each."
    )
  return content_layers, style_layers, style_layer_weights


def run(config, workdir: str) -> dict:
  """Style transfer of ``config.content`` in the style of ``config.style``; PNGs, results.json."""
  validate.check(config, workdir, expect="stylize")  # before anything is loaded or written
  kernels.use(config.get("kernels", "auto"))
  t0 = time.time()
  inputs.check_choice(config, "optimizer", OPTIMIZERS)
  param = config.param or ("pixel" if config.optimizer == "adam" else "sigmoid")
  if param not in STYLE_PARAMS:
    raise ConfigError(
      f"--config.param={config.param!r}: use one of {', '.join(STYLE_PARAMS)}, or '' for the "
      "optimizer's default."
    )
  inputs.check_choice(config, "init", ("content", "noise"))
  if config.steps < 1 or config.size < 16:
    raise ConfigError(
      f"--config.steps={config.steps}, --config.size={config.size}: use at least 1 step and "
      "a size of at least 16 (e.g. --config.steps=200 --config.size=256)."
    )
  content_layers, style_layers, style_layer_weights = _layers(config)
  inputs.check_photo(config.content)
  inputs.check_photo(config.style)
  content = inputs.load_photo(config.content, config.size)[None]
  style = inputs.load_photo(config.style, config.style_size or config.size)[None]

  model, variables, _ = inputs.load_backbone(config.model, config.weights)
  features_fn = frozen_features_fn(model)
  shapes = jax.eval_shape(features_fn, variables, jax.ShapeDtypeStruct(content.shape, jnp.float32))
  missing = [n for n in [*content_layers, *style_layers] if n not in shapes[1]]
  if missing:
    raise ConfigError(
      f"{config.model} has no layer {', '.join(map(repr, missing))}; layers: "
      f"{', '.join(feature_names(model, config.size))}."
    )

  bar = tqdm(total=config.steps, desc=f"stylize {config.optimizer}", disable=not config.progress)

  def callback(step, terms):
    bar.n = step
    bar.set_postfix(loss=f"{terms['total']:.4g}", refresh=True)

  t_opt = time.time()
  image, history = stylize(
    features_fn,
    variables,
    jnp.asarray(content),
    jnp.asarray(style),
    content_layers=content_layers,
    style_layers=style_layers,
    content_weight=config.content_weight,
    style_weight=config.style_weight,
    tv_weight=config.tv_weight,
    style_layer_weights=style_layer_weights or None,
    steps=config.steps,
    optimizer=config.optimizer,
    learning_rate=config.learning_rate,
    param=param,
    init=config.init,
    rng=jax.random.key(config.seed),
    chunk=config.log_every,
    callback=callback,
  )
  seconds = time.time() - t_opt
  bar.close()
  os.makedirs(workdir, exist_ok=True)
  image = np.asarray(image)[0]
  viz.save_image(os.path.join(workdir, "stylized.png"), image)
  viz.save_image(os.path.join(workdir, "content.png"), content[0])
  viz.save_image(os.path.join(workdir, "style.png"), style[0])
  style_shown = Image.fromarray(viz.to_uint8(style[0])).resize((config.size, config.size))
  style_shown = np.asarray(style_shown, np.float32) / 255.0
  viz.labelled_gallery(
    os.path.join(workdir, "style_transfer.png"),
    np.stack([content[0], style_shown, image]),
    [
      f"content: {config.content}",
      f"style: {config.style}",
      f"{config.optimizer}, {config.steps} steps",
    ],
    ncols=3,
  )
  every = max(1, config.log_every)
  logged = [h for h in history if h["step"] % every == 0 or h["step"] == history[-1]["step"]]
  results = {
    "model": config.model,
    "content": config.content,
    "style": config.style,
    "size": config.size,
    "optimizer": config.optimizer,
    "param": param,
    "init": config.init,
    "steps": config.steps,
    "content_layers": content_layers,
    "style_layers": style_layers,
    "weights": {
      "content": config.content_weight,
      "style": config.style_weight,
      "tv": config.tv_weight,
    },
    "loss_first": history[0]["total"],
    "loss_final": history[-1]["total"],
    "loss_min": min(h["total"] for h in history),
    "final_terms": {k: v for k, v in history[-1].items() if k != "step"},
    "first_terms": {k: v for k, v in history[0].items() if k != "step"},
    "losses": [[h["step"], round(h["total"], 6)] for h in logged],
    "seconds": round(seconds, 2),
    "seconds_total": round(time.time() - t0, 2),
  }
  write_json(os.path.join(workdir, "results.json"), results)
  return results
