"""The attack run of ``experiments/attack.py``: adversarial photos against an ImageNet backbone.

``run(config, workdir)`` attacks the photos of ``config.images`` with PGD or
FGSM (:func:`vision.optimize.attacks.attack`), saves each original, adversarial
(lossless PNG at the input size) and amplified perturbation, a figure
``attack.png`` and ``results.json``. Success, norms and the optional transfer
to a second backbone are measured on the PNGs as saved and read back.
``config.task='fashion_mnist'`` is the robustness curve instead
(:mod:`vision.drivers.robustness`).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from vision import validate, viz
from vision.drivers import inputs, robustness
from vision.errors import ConfigError
from vision.ops import kernels
from vision.optimize.attacks import attack, attack_success, perturbation_norms
from vision.optimize.frozen import logits_fn
from vision.train.writers import write_json
from vision.weights.imagenet import class_names

# What counts as a correct ImageNet answer for the built-in photos: every class
# that truthfully describes the picture. A photo the model gets wrong is not
# attacked (it counts against clean_accuracy only).
PHOTO_CLASSES = {
  "chelsea": (281, 282, 283, 284, 285),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
  "cat": (281, 282, 283, 284, 285),  # the same photo as chelsea
  "coffee": (967, 968, 504),  # espresso, cup, coffee mug
  "camera": (872, 759, 732),  # tripod, reflex camera, Polaroid camera (the cameraman's)
  "rocket": (657, 744, 812),  # missile, projectile, space shuttle
  "clock": (409, 892),  # analog clock, wall clock
}


def parse_image_specs(text: str) -> list[tuple[str, tuple[int, ...] | None]]:
  """``'chelsea,cat.png=tabby|285,dog.jpg'`` -> ``[(spec, classes or None)]``.

  Built-in photos take their classes from :data:`PHOTO_CLASSES`; a file without
  ``=CLASSES`` is labelled by the model's own clean top-1 class.
  """
  out = []
  for item in inputs.split_list(text):
    spec, sep, classes = item.rpartition("=") if "=" in item else (item, "", "")
    if sep:
      labels = tuple(inputs.imagenet_class(c) for c in classes.split("|") if c.strip())
      if not labels:
        raise ConfigError(f"image {item!r}: no class after '='.")
    else:
      labels = PHOTO_CLASSES.get(spec)
    out.append((spec, labels))
  if not out:
    raise ConfigError("config.images is empty; give e.g. chelsea,coffee or image files.")
  return out


def _caption(probs, names) -> str:
  i = int(np.argmax(probs))
  name = names[i] if names else str(i)
  return f"{name[:22]} {probs[i]:.2f}"


def run(config, workdir: str) -> dict:
  """The run ``config.task`` names: ``'imagenet'`` (photos) or ``'fashion_mnist'`` (robustness)."""
  validate.check(config, workdir, expect="attack")  # before anything is loaded or written
  if config.task == "fashion_mnist":
    return robustness.run(config, workdir)
  if config.task != "imagenet":
    raise ConfigError(f"config.task={config.task!r}; use 'imagenet' or 'fashion_mnist'.")
  return run_photos(config, workdir)


def _transfer(config, x0, saved, labels, targeted: bool) -> dict:
  """Success rates on ``config.transfer_model`` of the clean and the saved adversarial photos."""
  model, variables, size = inputs.load_backbone(config.transfer_model, config.transfer_weights)
  fn = logits_fn(model)
  predict = jax.jit(
    lambda v, x: jax.nn.softmax(
      fn(v, jax.image.resize(x, (x.shape[0], size, size, 3), "bilinear")), axis=-1
    )
  )
  labels = jnp.asarray(labels)

  def rate(images):
    probs = jnp.asarray(np.asarray(predict(variables, images)))
    return float(np.mean(attack_success(probs, labels, targeted)))

  return {
    "transfer_model": config.transfer_model,
    "transfer_clean_success_rate": rate(x0),
    "transfer_success_rate": rate(saved),
  }


def run_photos(config, workdir: str) -> dict:
  """Attacks ImageNet photos with a backbone; writes PNGs, ``attack.png`` and ``results.json``."""
  kernels.use(config.get("kernels", "auto"))
  t0 = time.time()
  inputs.check_attack(config)
  eps = inputs.parse_number(config.eps, "config.eps")
  if eps <= 0:
    raise ConfigError(
      f"--config.eps={config.eps!r}: eps must be positive; use e.g. --config.eps=8/255."
    )
  settings = inputs.attack_settings(config, eps)
  target = inputs.imagenet_class(config.target) if str(config.target).strip() else None
  targeted = target is not None
  specs = parse_image_specs(config.images)
  for spec, _ in specs:  # before the model loads: a typo fails at once
    inputs.check_photo(spec)
  names = class_names()

  model, variables, size = inputs.load_backbone(config.model, config.weights)
  size = config.size or size
  fn = logits_fn(model)
  predict = jax.jit(lambda v, x: jax.nn.softmax(fn(v, x), axis=-1))
  photos = np.stack([inputs.load_photo(spec, size) for spec, _ in specs])
  clean_probs = np.asarray(predict(variables, photos))

  masks, correct = np.zeros((len(specs), 1000), bool), np.zeros(len(specs), bool)
  for i, (_, labels) in enumerate(specs):
    labels = labels if labels is not None else (int(clean_probs[i].argmax()),)
    masks[i, list(labels)] = True
    correct[i] = masks[i, clean_probs[i].argmax()]
  chosen = np.flatnonzero(correct)
  if len(chosen) == 0:
    raise ConfigError(
      f"{config.model} classifies none of the images correctly "
      f"({', '.join(s for s, _ in specs)}); nothing to attack."
    )
  x0 = photos[chosen]
  labels = np.full(len(chosen), target) if targeted else masks[chosen]
  rng = jax.random.key(config.seed)
  adv = []
  batch = max(1, config.batch_size)
  for start in tqdm(
    range(0, len(chosen), batch), desc=f"{config.method} {config.norm}", disable=not config.progress
  ):
    adv.append(
      attack(
        fn,
        variables,
        jnp.asarray(x0[start : start + batch]),
        jnp.asarray(labels[start : start + batch]),
        jax.random.fold_in(rng, start),
        targeted=targeted,
        **settings,
      )
    )
  adv = np.concatenate([np.asarray(a) for a in adv])
  float_success = np.asarray(
    attack_success(jnp.asarray(predict(variables, adv)), jnp.asarray(labels), targeted)
  )

  # Save losslessly at the input size, read back, and measure what was saved.
  os.makedirs(workdir, exist_ok=True)
  saved, files = [], []
  for i, k in enumerate(chosen):
    name = inputs.photo_name(specs[k][0])
    viz.save_image(os.path.join(workdir, f"original_{name}.png"), x0[i])
    path = viz.save_image(os.path.join(workdir, f"adversarial_{name}.png"), adv[i])
    saved.append(inputs.read_png(path))
    files.append(name)
  saved = np.stack(saved)
  adv_probs = np.asarray(predict(variables, saved))
  success = np.asarray(attack_success(jnp.asarray(adv_probs), jnp.asarray(labels), targeted))
  norms = perturbation_norms(saved, x0)
  tol = 1e-6
  within = norms["linf" if config.norm == "linf" else "l2"] <= eps + tol
  in_range = bool(saved.min() >= 0 and saved.max() <= 1)

  amplify = []
  for i, name in enumerate(files):
    delta = saved[i] - x0[i]
    scale = 0.5 / max(eps if config.norm == "linf" else float(np.abs(delta).max()), 1e-12)
    amplify.append(scale)
    viz.save_image(os.path.join(workdir, f"perturbation_{name}.png"), 0.5 + scale * delta)
  rows, titles = [], []
  for i, k in enumerate(chosen):
    rows += [x0[i], np.clip(0.5 + amplify[i] * (saved[i] - x0[i]), 0, 1), saved[i]]
    titles += [
      f"{files[i]}: {_caption(clean_probs[k], names)}",
      f"perturbation x{amplify[i]:.0f}",
      f"adversarial: {_caption(adv_probs[i], names)}",
    ]
  viz.labelled_gallery(os.path.join(workdir, "attack.png"), np.stack(rows), titles, ncols=3)

  transfer = _transfer(config, x0, saved, labels, targeted) if config.transfer_model else {}

  per_image = []
  for i, k in enumerate(chosen):
    per_image.append(
      {
        "image": specs[k][0],
        "correct_classes": [names[c] for c in np.flatnonzero(masks[k])],
        "top_before": inputs.top_classes(clean_probs[k], config.top),
        "top_after": inputs.top_classes(adv_probs[i], config.top),
        "success": bool(success[i]),
        "linf": float(norms["linf"][i]),
        "linf_levels": float(np.round(norms["linf"][i] * 255, 3)),
        "l2": float(norms["l2"][i]),
        "files": [f"original_{files[i]}.png", f"adversarial_{files[i]}.png"],
      }
    )
  results = {
    "model": config.model,
    "method": config.method,
    "norm": config.norm,
    "eps": eps,
    "step_size": settings["step_size"],
    "steps": settings["steps"],
    "targeted": targeted,
    "target": names[target] if targeted else None,
    "images": len(specs),
    "attacked": len(chosen),
    "not_attacked": [
      {"image": specs[k][0], "top_before": inputs.top_classes(clean_probs[k], config.top)}
      for k in np.flatnonzero(~correct)
    ],
    "clean_accuracy": float(correct.mean()),
    "success_rate": float(success.mean()),
    "success_rate_float": float(float_success.mean()),
    "mean_linf": float(norms["linf"].mean()),
    "mean_l2": float(norms["l2"].mean()),
    "max_linf": float(norms["linf"].max()),
    "all_within_eps": bool(within.all()),
    "all_in_range": in_range,
    "per_image": per_image,
    "seconds": round(time.time() - t0, 2),
    **transfer,
  }
  write_json(os.path.join(workdir, "results.json"), results)
  return results
