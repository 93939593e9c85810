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
    logits_fn: ``f(variables, images) -> logits`` (static; ``frozen.logits_fn(model)``).
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


def fgsm(logits_fn, variables, images: jax.Array, labels: jax.Array, *, eps, **options):
  """Fast gradient sign method (Goodfellow et al. 2015): one L-inf step of size eps.

  ``options``: ``targeted``, ``quantize``, ``loss`` as in :func:`pgd`.
  """
  return attack(logits_fn, variables, images, labels, method="fgsm", eps=eps, **options)


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
  **options,
) -> jax.Array:
  """``method='fgsm'`` or ``'pgd'``; ``step_size=None``: ``2.5 * eps / steps`` (Madry et al.).

  ``options``: ``targeted``, ``random_start``, ``quantize``, ``loss`` as in
  :func:`pgd`. FGSM is PGD with one step of size eps from the image itself.
  """
  if method == "fgsm":
    if norm != "linf":
      raise ValueError("FGSM is an L-inf attack; use method='pgd' with norm='l2'.")
    rng, step_size, steps = None, eps, 1
    options = {**options, "random_start": False}
  elif method != "pgd":
    raise ValueError(f"unknown attack {method!r}; expected 'fgsm' or 'pgd'.")
  elif step_size is None:
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
    **options,
  )


def perturbation_norms(adv, images) -> dict[str, np.ndarray]:
  """Per-example L-inf and L2 norms of ``adv - images`` (numpy, float64)."""
  delta = np.asarray(adv, np.float64) - np.asarray(images, np.float64)
  flat = delta.reshape(len(delta), -1)
  return {"linf": np.abs(flat).max(axis=1), "l2": np.sqrt((flat**2).sum(axis=1))}
