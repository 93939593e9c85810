"""The visualization run of ``experiments/visualize.py``: ImageNet classes or channels from noise.

``run(config, workdir)`` optimizes one picture per class (``mode='class'``)
or per channel of a named layer (``'feature'``) with
:func:`vision.optimize.visualize.optimize_image`, saves each as a lossless PNG
at the model's input size, a labelled figure and ``results.json``. The
reported probability (activation) is measured on the *untransformed* final
picture after saving it as an 8-bit PNG, i.e. on the picture shown.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from vision import validate, viz
from vision.drivers import inputs
from vision.errors import ConfigError
from vision.models.backbones import feature_names
from vision.ops import kernels
from vision.optimize.frozen import features_fn as frozen_features_fn
from vision.optimize.visualize import (
  PARAMS,
  ImageParam,
  Transforms,
  channel_activation,
  class_objective,
  feature_objective,
  optimize_image,
)
from vision.train.writers import write_json
from vision.weights.imagenet import class_names


def _check(config) -> None:
  inputs.check_choice(config, "mode", ("class", "feature"))
  inputs.check_choice(config, "objective", ("ce", "logit"))
  inputs.check_choice(config, "param", PARAMS)
  inputs.check_choice(config, "tv_reduction", ("sum", "mean"))
  if config.steps < 1:
    raise ConfigError("config.steps must be at least 1.")


def _targets(config, names: list[str]) -> tuple[list[int], list[str]]:
  """The classes or channels to visualize, and a label of each."""
  if config.mode == "class":
    targets = [inputs.imagenet_class(c) for c in inputs.split_list(config.classes)]
    if not targets:
      raise ConfigError("config.classes is empty; give e.g. 'Egyptian cat,espresso'.")
    return targets, [names[t] for t in targets]
  try:
    targets = [int(c) for c in inputs.split_list(config.channels)]
  except ValueError as e:
    raise ConfigError(f"config.channels={config.channels!r}: give integers like 0,1,2.") from e
  if not targets or min(targets) < 0:
    raise ConfigError("config.channels needs non-negative channel indices, e.g. 0,1,2.")
  return targets, [f"{config.layer}:{c}" for c in targets]


def _check_layer(config, model, variables, features_fn, size: int, channels: list[int]) -> None:
  shapes = jax.eval_shape(
    features_fn, variables, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  )[1]
  if config.layer not in shapes:
    raise ConfigError(
      f"{config.model} has no layer {config.layer!r}; layers: "
      f"{', '.join(feature_names(model, size))}."
    )
  width = shapes[config.layer].shape[-1]
  if max(channels) >= width:
    raise ConfigError(f"layer {config.layer!r} has {width} channels; got channel {max(channels)}.")


def run(config, workdir: str) -> dict:
  """Class (``mode='class'``) or feature (``'feature'``) visualization; PNGs and results.json."""
  validate.check(config, workdir, expect="visualize")  # before anything is loaded or written
  kernels.use(config.get("kernels", "auto"))
  t0 = time.time()
  _check(config)
  names = class_names()
  targets, labels = _targets(config, names)

  model, variables, size = inputs.load_backbone(config.model, config.weights)
  size = config.size or size
  features_fn = frozen_features_fn(model)
  if config.mode == "feature":
    _check_layer(config, model, variables, features_fn, size, targets)

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
    name = f"{config.mode}_{i}_{inputs.photo_name(label)}.png"
    saved.append(inputs.read_png(viz.save_image(os.path.join(workdir, name), images[i])))
    files.append(name)
  saved = np.stack(saved)
  apply = jax.jit(features_fn)
  logits, features = apply(variables, jnp.asarray(saved))
  probs = np.asarray(jax.nn.softmax(logits, axis=-1))
  float_logits, _ = apply(variables, jnp.asarray(images))
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
        "top": {label: inputs.top_classes(probs[i], 3) for i, label in enumerate(labels)},
      }
    )
    titles = [f"{label[:20]}: p={v:.2f}" for label, v in zip(labels, p)]
  else:
    act = np.asarray(channel_activation(features, config.layer, targets))
    grey = jnp.full_like(jnp.asarray(saved), 0.5)  # baseline: a uniform grey picture
    grey_act = np.asarray(channel_activation(apply(variables, grey)[1], config.layer, targets))
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
  write_json(os.path.join(workdir, "results.json"), results)
  return results
