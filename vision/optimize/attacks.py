"""Adversarial examples by gradient ascent on the input: FGSM and PGD (L-inf and L2).

    fn = logits_fn(model)                          # (variables, images) -> logits, frozen
    adv = pgd(fn, variables, images, labels, rng, eps=8 / 255, step_size=2 / 255, steps=10)
    adv = pgd(fn, variables, images, targets, rng, eps=8 / 255, ..., targeted=True)
    adv = fgsm(fn, variables, images, labels, eps=8 / 255)

Images and ``eps`` live in pixel space [0, 1]; the model normalizes inside.
The whole attack is one jitted function: every step runs inside
``lax.fori_loop`` on the whole batch, the network's variables are an argument
under ``stop_gradient`` and the model runs with ``train=False``.

Each step (Madry et al. 2018): the gradient ``g`` of the attacker's objective
with respect to the image; L-inf: ``x += step_size * sign(g)``; L2: ``x +=
step_size * g / ||g||`` per example; then projection back onto the eps-ball
around the original (clip, or rescale of the perturbation for L2) and onto
[0, 1]. The random start is uniform in the ball. FGSM is one L-inf step of
size eps from the original.

Labels are class indices ``[B]`` or a boolean mask ``[B, K]`` of acceptable
classes (a photo of a cat is correct as any of the five ImageNet cats): the
untargeted objective is then ``-log p(any acceptable class)`` and success
means the top-1 class leaves the set. Targeted attacks minimize the
cross-entropy of the target and succeed when it is the top-1 class.

``quantize=True`` puts the examples onto the 8-bit grid (``k / 255``) inside
the eps-ball, so they survive being saved as PNG unchanged (the clean images
must be on that grid, as images read from 8-bit files are): every L-inf
iterate is snapped; L2 iterates stay continuous and the final candidates are
snapped and checked again (sub-level L2 steps would be erased otherwise). The
returned example of each image is its last iterate that succeeded, if any
did, else the final one, so a success found along the way is not lost.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

NORMS = ("linf", "l2")
LOSSES = ("ce", "margin")


def _as_mask(labels: jax.Array, num_classes: int) -> jax.Array:
  if labels.ndim == 2:
    return labels.astype(bool)
  return jax.nn.one_hot(labels, num_classes, dtype=jnp.bool_)


def attack_objective(
  logits: jax.Array, labels: jax.Array, targeted: bool = False, loss: str = "ce"
) -> jax.Array:
  """Per-example objective the attacker maximizes, ``[B]``.

  Untargeted: ``-log sum_{c in labels} p_c`` (cross-entropy of the true class)
  or the margin ``max_{c not in labels} z_c - max_{c in labels} z_c``.
  Targeted (``labels`` = targets): ``log p_target`` or ``z_t - max_{c != t} z_c``.
  """
  logits = logits.astype(jnp.float32)
  mask = _as_mask(labels, logits.shape[-1])
  neg = jnp.finfo(jnp.float32).min
  inside = jnp.where(mask, logits, neg)
  outside = jnp.where(mask, neg, logits)
  if loss == "ce":
    log_in = jax.nn.logsumexp(inside, axis=-1) - jax.nn.logsumexp(logits, axis=-1)
    return log_in if targeted else -log_in
  if loss == "margin":
    margin = outside.max(axis=-1) - inside.max(axis=-1)
    return -margin if targeted else margin
  raise ValueError(f"unknown attack loss {loss!r}; expected one of {LOSSES}.")


def attack_success(logits: jax.Array, labels: jax.Array, targeted: bool = False) -> jax.Array:
  """Per-example success ``[B]`` bool: top-1 left the label set / reached the target."""
  mask = _as_mask(labels, logits.shape[-1])
  top1_in = jnp.take_along_axis(mask, jnp.argmax(logits, axis=-1)[:, None], axis=-1)[:, 0]
  return top1_in if targeted else ~top1_in


def _per_example_norm(x: jax.Array, ord: str) -> jax.Array:
  flat = x.reshape(x.shape[0], -1)
  if ord == "linf":
    return jnp.abs(flat).max(axis=-1)
  return jnp.sqrt(jnp.sum(flat * flat, axis=-1))


def _bcast(v: jax.Array, x: jax.Array) -> jax.Array:
  return v.reshape((-1,) + (1,) * (x.ndim - 1))


def project(x: jax.Array, x0: jax.Array, eps, norm: str) -> jax.Array:
  """Projects ``x`` onto the ``norm``-ball of radius eps around ``x0`` and then onto [0, 1].

  Clipping to [0, 1] after the projection only shrinks every coordinate of the
  perturbation towards 0 (``x0`` is in [0, 1]), so the result stays in the ball.
  """
  delta = x - x0
  if norm == "linf":
    delta = jnp.clip(delta, -eps, eps)
  elif norm == "l2":
    n = _per_example_norm(delta, "l2")
    delta = delta * _bcast(jnp.minimum(1.0, eps / jnp.maximum(n, 1e-12)), delta)
  else:
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}.")
  return jnp.clip(x0 + delta, 0.0, 1.0)


def snap_to_grid(x: jax.Array, x0: jax.Array, eps, norm: str, levels: int = 255) -> jax.Array:
  """Snaps ``x`` onto the grid ``k / levels`` without leaving the eps-ball around ``x0`` or [0, 1].

  L-inf: rounds to the nearest level, then clips to the levels inside
  ``[x0 - eps, x0 + eps]``. L2 (``x0`` on the grid): rounds the perturbation
  scaled by the largest of ``1, 0.95, ..., 0.65`` whose rounding stays inside
  the ball; if none does, rounds it towards zero, which never increases any
  coordinate's size.
  """
  tol = 1e-3  # in levels: float noise of values that are on the grid
  if norm == "linf":
    q = jnp.clip(jnp.round(x * levels), 0, levels)
    lo = jnp.ceil((x0 - eps) * levels - tol)
    hi = jnp.floor((x0 + eps) * levels + tol)
    return jnp.clip(q, jnp.maximum(lo, 0), jnp.minimum(hi, levels)) / levels
  if norm == "l2":
    d = (x - x0) * levels
    near = jnp.abs(d - jnp.round(d)) < tol
    out = jnp.clip(x0 + jnp.where(near, jnp.round(d), jnp.trunc(d)) / levels, 0.0, 1.0)
    for scale in np.linspace(0.65, 1.0, 8):  # the largest feasible scale wins
      candidate = jnp.clip(x0 + jnp.round(d * scale) / levels, 0.0, 1.0)
      ok = _per_example_norm(candidate - x0, "l2") <= eps * (1 + 1e-6)
      out = jnp.where(_bcast(ok, x), candidate, out)
    return out
  raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}.")


def sample_ball(rng: jax.Array, x0: jax.Array, eps, norm: str) -> jax.Array:
  """A uniform sample of the eps-ball around ``x0`` (clipped to [0, 1])."""
  if norm == "linf":
    delta = jax.random.uniform(rng, x0.shape, jnp.float32, -1.0, 1.0) * eps
  else:
    k1, k2 = jax.random.split(rng)
    direction = jax.random.normal(k1, x0.shape, jnp.float32)
    direction = direction / _bcast(_per_example_norm(direction, "l2"), direction)
    d = np.prod(x0.shape[1:])
    radius = eps * jax.random.uniform(k2, (x0.shape[0],)) ** (1.0 / d)
    delta = direction * _bcast(radius, direction)
  return project(x0 + delta, x0, eps, norm)


@functools.partial(
  jax.jit,
  static_argnames=("logits_fn", "steps", "norm", "targeted", "random_start", "quantize", "loss"),
)
def pgd(
  logits_fn,
  variables,
  images: jax.Array,
  labels: jax.Array,
  rng: jax.Array | None = None,
  *,
  eps,
  step_size,
  steps: int = 10,
  norm: str = "linf",
  targeted: bool = False,
  random_start: bool = True,
  quantize: bool = False,
  loss: str = "ce",
) -> jax.Array:
  """Projected gradient descent on the input (see the module docstring); returns ``[B, H, W, C]``.

  Args:
    logits_fn: ``f(variables, images) -> logits`` (static; ``common.logits_fn(model)``).
    variables: the network's variables; frozen (``stop_gradient``), never returned.
    images: clean images ``[B, H, W, C]`` in [0, 1].
    labels: true classes ``[B]`` (or a ``[B, K]`` mask of acceptable classes);
      the target classes when ``targeted``.
    rng: key of the random start (required when ``random_start``).
    eps, step_size: radius of the ball and size of a step, in pixel units (traced:
      a sweep over eps compiles once).
    steps: number of gradient steps.
    norm: ``'linf'`` or ``'l2'``.
    targeted: move towards ``labels`` instead of away from them.
    random_start: start at a uniform sample of the ball instead of the image.
    quantize: return examples on the 8-bit grid (see :func:`snap_to_grid`).
    loss: ``'ce'`` (cross-entropy) or ``'margin'`` (Carlini-Wagner logit margin).
  """
  if norm not in NORMS:
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}.")
  variables = jax.lax.stop_gradient(variables)
  x0 = images.astype(jnp.float32)
  eps = jnp.asarray(eps, jnp.float32)
  step_size = jnp.asarray(step_size, jnp.float32)

  def objective(x):
    logits = logits_fn(variables, x)
    return attack_objective(logits, labels, targeted, loss).sum(), logits

  grad_fn = jax.value_and_grad(objective, has_aux=True)

  # L-inf steps are whole levels, so every iterate can live on the grid; L2 steps
  # spread sub-level changes over all pixels, which snapping every step would erase,
  # so L2 iterates stay continuous and only the final candidates are snapped.
  snap_each_step = quantize and norm == "linf"

  def finish(x):
    x = project(x, x0, eps, norm)
    return snap_to_grid(x, x0, eps, norm) if snap_each_step else x

  if random_start:
    if rng is None:
      raise ValueError("random_start=True needs an rng key.")
    x = finish(sample_ball(rng, x0, eps, norm))
  else:
    x = finish(x0)

  def body(_, carry):
    x, best, found = carry
    (_, logits), g = grad_fn(x)
    ok = attack_success(logits, labels, targeted)
    best = jnp.where(_bcast(ok, x), x, best)
    if norm == "linf":
      x = x + step_size * jnp.sign(g)
    else:
      g_norm = _per_example_norm(g, "l2")
      x = x + step_size * g / _bcast(jnp.maximum(g_norm, 1e-12), g)
    return finish(x), best, found | ok

  found = jnp.zeros(x0.shape[0], bool)
  x, best, found = jax.lax.fori_loop(0, steps, body, (x, x0, found))
  if quantize and not snap_each_step:
    x, best = snap_to_grid(x, x0, eps, norm), snap_to_grid(best, x0, eps, norm)
    found = found & attack_success(logits_fn(variables, best), labels, targeted)
  last_ok = attack_success(logits_fn(variables, x), labels, targeted)
  keep_last = _bcast(last_ok | ~found, x)
  return jnp.where(keep_last, x, best)


def fgsm(
  logits_fn,
  variables,
  images: jax.Array,
  labels: jax.Array,
  *,
  eps,
  targeted: bool = False,
  quantize: bool = False,
  loss: str = "ce",
) -> jax.Array:
  """Fast gradient sign method (Goodfellow et al. 2015): one L-inf step of size eps."""
  return pgd(
    logits_fn,
    variables,
    images,
    labels,
    None,
    eps=eps,
    step_size=eps,
    steps=1,
    norm="linf",
    targeted=targeted,
    random_start=False,
    quantize=quantize,
    loss=loss,
  )


def attack(
  logits_fn,
  variables,
  images,
  labels,
  rng=None,
  *,
  method: str = "pgd",
  eps,
  step_size=None,
  steps: int = 10,
  norm: str = "linf",
  targeted: bool = False,
  random_start: bool = True,
  quantize: bool = False,
  loss: str = "ce",
) -> jax.Array:
  """``method='fgsm'`` or ``'pgd'``; ``step_size=None``: ``2.5 * eps / steps`` (Madry et al.)."""
  if method == "fgsm":
    if norm != "linf":
      raise ValueError("FGSM is an L-inf attack; use method='pgd' with norm='l2'.")
    return fgsm(
      logits_fn,
      variables,
      images,
      labels,
      eps=eps,
      targeted=targeted,
      quantize=quantize,
      loss=loss,
    )
  if method != "pgd":
    raise ValueError(f"unknown attack {method!r}; expected 'fgsm' or 'pgd'.")
  if step_size is None:
    step_size = 2.5 * eps / steps
  return pgd(
    logits_fn,
    variables,
    images,
    labels,
    rng,
    eps=eps,
    step_size=step_size,
    steps=steps,
    norm=norm,
    targeted=targeted,
    random_start=random_start,
    quantize=quantize,
    loss=loss,
  )


def perturbation_norms(adv, images) -> dict[str, np.ndarray]:
  """Per-example L-inf and L2 norms of ``adv - images`` (numpy, float64)."""
  delta = np.asarray(adv, np.float64) - np.asarray(images, np.float64)
  flat = delta.reshape(len(delta), -1)
  return {"linf": np.abs(flat).max(axis=1), "l2": np.sqrt((flat**2).sum(axis=1))}


# -- runs (scripts/attack.py) -------------------------------------------------------------------

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
  from vision.cli import UserError
  from vision.optimize.common import imagenet_class, split_list

  out = []
  for item in split_list(text):
    spec, sep, classes = item.rpartition("=") if "=" in item else (item, "", "")
    if sep:
      labels = tuple(imagenet_class(c) for c in classes.split("|") if c.strip())
      if not labels:
        raise UserError(f"image {item!r}: no class after '='.")
    else:
      labels = PHOTO_CLASSES.get(spec)
    out.append((spec, labels))
  if not out:
    raise UserError("config.images is empty; give e.g. chelsea,coffee or image files.")
  return out


def _step_size(config, eps: float, steps: int) -> float:
  from vision.optimize.common import parse_number

  if str(config.step_size).strip():
    return parse_number(config.step_size, "config.step_size")
  size = 2.5 * eps / max(steps, 1)
  return max(size, 1 / 255) if config.quantize and config.norm == "linf" else size


def _check_common(config) -> None:
  from vision.cli import UserError

  if config.method not in ("pgd", "fgsm"):
    raise UserError(f"config.method={config.method!r}; use 'pgd' or 'fgsm'.")
  if config.norm not in NORMS:
    raise UserError(f"config.norm={config.norm!r}; use one of {', '.join(NORMS)}.")
  if config.method == "fgsm" and config.norm != "linf":
    raise UserError("FGSM is an L-inf attack; use config.method=pgd for config.norm=l2.")
  if config.loss not in LOSSES:
    raise UserError(f"config.loss={config.loss!r}; use one of {', '.join(LOSSES)}.")
  if config.steps < 1:
    raise UserError("config.steps must be at least 1.")


def _top(probs, k) -> list[dict]:
  from vision.optimize.common import top_k

  return [{**r, "prob": round(r["prob"], 4)} for r in top_k(probs, k)]


def _caption(probs, names) -> str:
  i = int(np.argmax(probs))
  name = names[i] if names else str(i)
  return f"{name[:22]} {probs[i]:.2f}"


def run_images(config, workdir: str) -> dict:
  """Attacks ImageNet photos with a backbone; writes PNGs, ``attack.png`` and ``results.json``."""
  import os
  import time

  from tqdm.auto import tqdm

  from vision import viz
  from vision.cli import UserError
  from vision.optimize import common
  from vision.weights import class_names

  t0 = time.time()
  _check_common(config)
  eps = common.parse_number(config.eps, "config.eps")
  if eps <= 0:
    raise UserError(f"config.eps must be positive, got {config.eps!r}.")
  steps = 1 if config.method == "fgsm" else config.steps
  step_size = eps if config.method == "fgsm" else _step_size(config, eps, steps)
  target = common.imagenet_class(config.target) if str(config.target).strip() else None
  specs = parse_image_specs(config.images)
  names = class_names()

  model, variables, size = common.load_backbone(config.model, config.weights)
  size = config.size or size
  fn = common.logits_fn(model)
  predict = jax.jit(lambda v, x: jax.nn.softmax(fn(v, x), axis=-1))
  photos = np.stack([common.load_photo(spec, size) for spec, _ in specs])
  clean_probs = np.asarray(predict(variables, photos))

  masks, correct = np.zeros((len(specs), 1000), bool), np.zeros(len(specs), bool)
  for i, (_, labels) in enumerate(specs):
    labels = labels if labels is not None else (int(clean_probs[i].argmax()),)
    masks[i, list(labels)] = True
    correct[i] = masks[i, clean_probs[i].argmax()]
  chosen = np.flatnonzero(correct)
  if len(chosen) == 0:
    raise UserError(
      f"{config.model} classifies none of the images correctly "
      f"({', '.join(s for s, _ in specs)}); nothing to attack."
    )
  x0 = photos[chosen]
  labels = np.full(len(chosen), target) if target is not None else masks[chosen]
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
        method=config.method,
        eps=eps,
        step_size=step_size,
        steps=steps,
        norm=config.norm,
        targeted=target is not None,
        random_start=config.random_start,
        quantize=config.quantize,
        loss=config.loss,
      )
    )
  adv = np.concatenate([np.asarray(a) for a in adv])
  float_success = np.asarray(
    attack_success(jnp.asarray(predict(variables, adv)), jnp.asarray(labels), target is not None)
  )

  # Save losslessly at the input size, read back, and measure what was saved.
  os.makedirs(workdir, exist_ok=True)
  saved, files = [], []
  for i, k in enumerate(chosen):
    name = common.photo_name(specs[k][0])
    viz.save_image(os.path.join(workdir, f"original_{name}.png"), x0[i])
    path = viz.save_image(os.path.join(workdir, f"adversarial_{name}.png"), adv[i])
    saved.append(common.read_png(path))
    files.append(name)
  saved = np.stack(saved)
  adv_probs = np.asarray(predict(variables, saved))
  success = np.asarray(
    attack_success(jnp.asarray(adv_probs), jnp.asarray(labels), target is not None)
  )
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

  transfer = {}
  if config.transfer_model:
    t_model, t_vars, t_size = common.load_backbone(config.transfer_model, config.transfer_weights)
    t_fn = common.logits_fn(t_model)
    t_predict = jax.jit(
      lambda v, x: jax.nn.softmax(
        t_fn(v, jax.image.resize(x, (x.shape[0], t_size, t_size, 3), "bilinear")), axis=-1
      )
    )
    t_clean = np.asarray(t_predict(t_vars, x0))
    t_adv = np.asarray(t_predict(t_vars, saved))
    t_labels = jnp.asarray(labels)
    transfer = {
      "transfer_model": config.transfer_model,
      "transfer_clean_success_rate": float(
        np.mean(attack_success(jnp.asarray(t_clean), t_labels, target is not None))
      ),
      "transfer_success_rate": float(
        np.mean(attack_success(jnp.asarray(t_adv), t_labels, target is not None))
      ),
    }

  per_image = []
  for i, k in enumerate(chosen):
    per_image.append(
      {
        "image": specs[k][0],
        "correct_classes": [names[c] for c in np.flatnonzero(masks[k])],
        "top_before": _top(clean_probs[k], config.top),
        "top_after": _top(adv_probs[i], config.top),
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
    "step_size": step_size,
    "steps": steps,
    "targeted": target is not None,
    "target": names[target] if target is not None else None,
    "images": len(specs),
    "attacked": len(chosen),
    "not_attacked": [
      {"image": specs[k][0], "top_before": _top(clean_probs[k], config.top)}
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
  common.write_json(os.path.join(workdir, "results.json"), results)
  return results


def classifier_logits_fn(classifier):
  """``f(variables, images) -> logits`` of a project classifier (``load_classifier``), frozen."""
  from vision.data import augment

  model, aug = classifier.task.model, classifier.config.aug

  def fn(variables, images):
    x = augment.eval_preprocess(images, aug)
    return model.apply(jax.lax.stop_gradient(variables), x, train=False)[0].astype(jnp.float32)

  return fn


def _eps_key(eps: float) -> str:
  levels = eps * 255
  return f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-6 else f"{eps:.6g}"


def plot_robustness(path: str, eps_list, curves: dict[str, list[float]], title: str) -> str:
  """Accuracy vs eps (in 8-bit levels) for each named curve."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  levels = [e * 255 for e in eps_list]
  fig, ax = plt.subplots(figsize=(6.0, 3.8))
  styles = ["o-", "s-", "^--", "v--", "d:", "x:"]
  for (label, values), style in zip(curves.items(), styles):
    ax.plot(levels, values, style, label=label, markersize=4)
  ax.set_xscale("symlog", linthresh=1)
  ax.set_xticks(levels, [_eps_key(e) for e in eps_list], fontsize=7)
  ax.set_xlabel("eps (L-inf, pixel units)")
  ax.set_ylabel("accuracy")
  ax.set_ylim(-0.02, 1.02)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def run_robustness(config, workdir: str) -> dict:
  """Robust accuracy vs eps of a project classifier, and transfer to a second classifier.

  Classifier A is ``config.classifier`` (+ ``classifier_overrides``), B the same
  config with ``transfer_overrides`` (another training recipe), both trained
  once and cached by :func:`vision.evaluate.classifier_features.load_classifier`.
  For every eps: each model's accuracy under its own white-box attack, and
  each model's accuracy on the other's adversarial examples (transfer).
  """
  import os
  import time

  from tqdm.auto import tqdm

  from vision import viz
  from vision.cli import UserError
  from vision.data.sources import load_split
  from vision.evaluate.classifier_features import load_classifier
  from vision.optimize import common

  t0 = time.time()
  _check_common(config)
  eps_list = [common.parse_number(e, "config.eps_list") for e in common.split_list(config.eps_list)]
  if not eps_list or min(eps_list) < 0:
    raise UserError("config.eps_list needs non-negative values, e.g. 0,2/255,8/255.")
  main_eps = common.parse_number(config.eps, "config.eps")
  if main_eps not in eps_list:
    eps_list.append(main_eps)
  eps_list = sorted(set(eps_list))
  overrides = {
    "A": [o.strip() for o in config.classifier_overrides.split(";") if o.strip()],
    "B": [o.strip() for o in config.transfer_overrides.split(";") if o.strip()],
  }
  use_b = bool(config.transfer_overrides.strip())
  classifiers = {"A": load_classifier(config.classifier, overrides["A"])}
  if use_b:
    classifiers["B"] = load_classifier(config.classifier, overrides["B"])
  fns = {k: classifier_logits_fn(c) for k, c in classifiers.items()}
  a = classifiers["A"]
  test = load_split(a.config.data, a.config.data.test_split)
  n = min(config.num_images, len(test)) if config.num_images > 0 else len(test)
  data = test.read(np.arange(n))
  images = data["image"].astype(np.float32) / 255.0
  labels = data["label"].astype(np.int32)
  batch = max(1, config.batch_size)
  predict = {k: jax.jit(lambda v, x, f=fns[k]: jnp.argmax(f(v, x), axis=-1)) for k in classifiers}

  def predictions(k, x):
    return np.concatenate(
      [
        np.asarray(predict[k](classifiers[k].variables, x[s : s + batch]))
        for s in range(0, len(x), batch)
      ]
    )

  clean_pred = {k: predictions(k, images) for k in classifiers}
  rng = jax.random.key(config.seed)
  accuracy = {src: {dst: [] for dst in classifiers} for src in classifiers}
  main = {}
  examples = {}
  bar = tqdm(
    total=len(eps_list) * len(classifiers) * -(-n // batch),
    desc="robustness",
    disable=not config.progress,
  )
  for eps in eps_list:
    steps = 1 if config.method == "fgsm" else config.steps
    step_size = eps if config.method == "fgsm" else _step_size(config, eps, steps)
    for src in classifiers:
      if eps == 0:
        adv = images
        bar.update(-(-n // batch))
      else:
        chunks = []
        for s in range(0, n, batch):
          chunks.append(
            np.asarray(
              attack(
                fns[src],
                classifiers[src].variables,
                jnp.asarray(images[s : s + batch]),
                jnp.asarray(labels[s : s + batch]),
                jax.random.fold_in(jax.random.fold_in(rng, s), round(eps * 1e6)),
                method=config.method,
                eps=eps,
                step_size=step_size,
                steps=steps,
                norm=config.norm,
                random_start=config.random_start,
                quantize=config.quantize,
                loss=config.loss,
              )
            )
          )
          bar.update(1)
        adv = np.concatenate(chunks)
      for dst in classifiers:
        accuracy[src][dst].append(float(np.mean(predictions(dst, adv) == labels)))
      if src == "A":
        examples[eps] = adv[: config.num_examples]
        if eps == main_eps:
          ok = clean_pred["A"] == labels
          fooled = predictions("A", adv) != labels
          norms = perturbation_norms(adv[ok], images[ok])
          main = {
            "success_rate": float(fooled[ok].mean()),
            "mean_linf": float(norms["linf"].mean()),
            "mean_l2": float(norms["l2"].mean()),
            "max_linf": float(norms["linf"].max()),
            "all_within_eps": bool((norms["linf"] <= eps + 1e-6).all()),
          }
  bar.close()

  os.makedirs(workdir, exist_ok=True)
  kind = config.method.upper()
  curves = {f"A (white-box {kind})": accuracy["A"]["A"]}
  if use_b:
    curves[f"B (white-box {kind})"] = accuracy["B"]["B"]
    curves["B on A's examples (transfer)"] = accuracy["A"]["B"]
    curves["A on B's examples (transfer)"] = accuracy["B"]["A"]
  name = os.path.basename(config.classifier).removesuffix(".py")
  plot_robustness(
    os.path.join(workdir, "robust_accuracy.png"),
    eps_list,
    curves,
    f"{name}: {config.method.upper()} {config.norm}, {config.steps} steps, {n} test images",
  )
  shown = [e for e in eps_list if e > 0]
  shown = [shown[len(shown) // 2], shown[-1]] if len(shown) > 1 else shown
  class_names = a.class_names
  rows, titles = (
    [images[: config.num_examples]],
    [f"clean: {class_names[p]}" for p in clean_pred["A"][: config.num_examples]],
  )
  for eps in shown:
    rows.append(examples[eps])
    pred = predictions("A", examples[eps])
    titles += [f"{_eps_key(eps)}: {class_names[p]}" for p in pred]
  if config.num_examples > 0:
    viz.labelled_gallery(
      os.path.join(workdir, "examples.png"),
      np.concatenate(rows),
      titles,
      ncols=config.num_examples,
    )

  keyed = lambda values: {_eps_key(e): round(v, 4) for e, v in zip(eps_list, values)}  # noqa: E731
  results = {
    "classifier": config.classifier,
    "classifier_a": {"overrides": overrides["A"], "test_accuracy": a.test_accuracy},
    "num_images": n,
    "method": config.method,
    "norm": config.norm,
    "steps": config.steps,
    "eps": main_eps,
    "clean_accuracy": float(np.mean(clean_pred["A"] == labels)),
    **main,
    "robust_accuracy": keyed(accuracy["A"]["A"]),
    "eps_levels": [round(e * 255, 4) for e in eps_list],
    "curves": {k: [round(v, 4) for v in values] for k, values in curves.items()},
  }
  if use_b:
    results["classifier_b"] = {
      "overrides": overrides["B"],
      "test_accuracy": classifiers["B"].test_accuracy,
    }
    results["clean_accuracy_b"] = float(np.mean(clean_pred["B"] == labels))
    results["robust_accuracy_b"] = keyed(accuracy["B"]["B"])
    results["transfer"] = {
      "b_accuracy_on_a_examples": keyed(accuracy["A"]["B"]),
      "a_accuracy_on_b_examples": keyed(accuracy["B"]["A"]),
    }
  results["seconds"] = round(time.time() - t0, 2)
  common.write_json(os.path.join(workdir, "results.json"), results)
  return results
