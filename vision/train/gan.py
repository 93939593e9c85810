"""GAN training: one jitted step updates the discriminator, then the generator.

What one step does (``train_step`` of :func:`build`), for a batch of real images in [-1, 1]:

1. :func:`generate`: the generator (batch norm in training mode) maps fresh
   noise to fakes and keeps the VJP of that forward pass.
2. :func:`discriminator_update`: non-saturating logistic loss on real (target
   ``1 - label_smoothing``) and the fakes (target 0, gradient stopped), one optax
   update of the discriminator with its own optimizer state. Repeated
   ``d_steps`` times; earlier repetitions draw their own fakes.
3. :func:`generator_update`: the gradient of ``-log D(G(z))`` through the
   *updated* discriminator with respect to the same fakes, pulled back through
   the stored VJP (the generator's forward pass is not recomputed, as in the
   PyTorch DCGAN tutorial), one optax update of the generator, then the
   exponential moving average of its weights and batch statistics.

Each half touches only its own network (tests check this). Everything a step
changes lives in one :class:`vision.train.state.GANState` pytree with ``.step``
and ``.params = {'generator', 'discriminator'}``, so the training loop, orbax
checkpoints and finiteness checks handle it unchanged and a resumed run
continues exactly. The fixed-noise sample grid of every epoch is computed
inside the step (of the averaged generator) and carried in the state, so it is
checkpointed too. The report (:mod:`vision.evaluate.gan_report`) writes those
grids, their evolution, ``gan.num_samples`` samples and the metrics (Fréchet
distance in the features of the feature classifier ``eval.classifier``, which
:func:`build` loads, or trains once, before training starts; its real-vs-real
baseline; class entropy).
"""

from __future__ import annotations

import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision import losses
from vision.errors import ConfigError
from vision.evaluate import gan_report
from vision.models.registry import create_model, model_kwargs
from vision.train import feature_classifier, writers
from vision.train.optim import make_optimizer
from vision.train.state import GANState, apply_updates, copy_tree
from vision.train.task import Task

ROLES = ("generator", "discriminator")
BUDGET_CLOCKS = ("wall", "process")


def to_signed(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1], the range of the generators' tanh."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(images) -> jax.Array:
  """[-1, 1] -> uint8, rounded: what is saved, shown and measured."""
  return jnp.round((jnp.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(jnp.uint8)


def ema_decay(step: jax.Array, decay: float) -> jax.Array:
  """``min(decay, (1 + t) / (10 + t))``: the average forgets the random init quickly."""
  t = step.astype(jnp.float32)
  return jnp.minimum(decay, (1.0 + t) / (10.0 + t))


def create_gan(config, image_shape, num_classes: int):
  """The registered :class:`vision.models.gan.GAN` pair ``config.model`` names."""
  return create_model(
    config.model.name,
    **model_kwargs(config.model, image_shape=tuple(image_shape), num_classes=num_classes),
  )


def snapshot_every(config, train_size: int) -> int:
  """Steps between fixed-noise grids: ``gan.snapshot_every``, or one epoch when it is 0."""
  every = int(config.gan.get("snapshot_every", 0) or 0)
  if every <= 0:
    every = max(1, train_size // config.batch_size)
  return every


# -- the two players -------------------------------------------------------------------------------
def init_generator(generator, latent_dim: int, rng) -> dict:
  z = jnp.zeros((2, latent_dim))
  labels = jnp.zeros((2,), jnp.int32)
  return dict(generator.init(rng, z, labels, train=False))


def sample(generator, variables, z, labels) -> jax.Array:
  """Images in [-1, 1] from a generator in inference mode (running batch statistics)."""
  images, _ = generator.apply(variables, z, labels, train=False)
  return images


def sample_grid(gan, gan_config, num_classes: int, variables) -> jax.Array:
  """The fixed-noise grid [G, H, W, C] uint8: the same noise and labels at every snapshot and
  in every run (``gan.grid_seed``, ``gan.grid_size``; labels cycle through the classes)."""
  size = int(gan_config.grid_size)
  z = jax.random.normal(
    jax.random.key(int(gan_config.get("grid_seed", 1234))), (size, gan.latent_dim)
  )
  labels = jnp.arange(size, dtype=jnp.int32) % num_classes
  return to_uint8(sample(gan.generator, variables, z, labels))


def generate(generator, state, z, labels):
  """Fakes from the training generator (batch statistics), with the VJP of the forward pass.

  Returns ``(fakes [B, H, W, C], pullback, new generator batch_stats)``;
  ``pullback(d_fakes)`` returns ``(d_generator_params,)``.
  """

  def forward(g_params):
    (images, _), updates = generator.apply(
      {"params": g_params, "batch_stats": state.batch_stats["generator"]},
      z,
      labels,
      train=True,
      mutable=["batch_stats"],
    )
    return images, updates.get("batch_stats", {})

  fakes, pullback, batch_stats = jax.vjp(forward, state.params["generator"], has_aux=True)
  return fakes, pullback, batch_stats


def discriminate(discriminator, d_params, batch_stats, images, labels, rng):
  """Discriminator logits [B] in training mode (dropout on, batch statistics)."""
  (logits, _), updates = discriminator.apply(
    {"params": d_params, "batch_stats": batch_stats},
    images,
    labels,
    train=True,
    rngs={"dropout": rng},
    mutable=["batch_stats"],
  )
  return logits, updates.get("batch_stats", {})


def discriminator_update(
  discriminator, gan_config, state, real, real_labels, fakes, fake_labels, rng
):
  """One optax update of the discriminator only. ``fakes`` are treated as constants."""
  fakes = jax.lax.stop_gradient(fakes)
  smoothing = float(gan_config.get("label_smoothing", 0.0))
  real_rng, fake_rng = jax.random.split(rng)

  def loss_fn(d_params):
    bs = state.batch_stats["discriminator"]
    real_logits, bs = discriminate(discriminator, d_params, bs, real, real_labels, real_rng)
    fake_logits, bs = discriminate(discriminator, d_params, bs, fakes, fake_labels, fake_rng)
    # One-sided label smoothing: real targets 1 - s, fake targets stay 0.
    loss = jnp.mean(
      losses.binary_cross_entropy_with_logits(real_logits, 1.0 - smoothing)
    ) + jnp.mean(losses.binary_cross_entropy_with_logits(fake_logits, 0.0))
    return loss, (real_logits, fake_logits, bs)

  (loss, (real_logits, fake_logits, d_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
    state.params["discriminator"]
  )
  d_params, d_opt = apply_updates(
    state.d_tx, grads, state.opt_state["discriminator"], state.params["discriminator"]
  )
  state = state.replace(
    params={**state.params, "discriminator": d_params},
    opt_state={**state.opt_state, "discriminator": d_opt},
    batch_stats={**state.batch_stats, "discriminator": d_bs},
  )
  metrics = {
    "d_loss": loss,
    "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),  # D(x) before the update
    "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),  # D(G(z)) before the update
    "d_grad_norm": optax.global_norm(grads),
  }
  return state, metrics


def generator_update(
  discriminator, gan_config, state, fakes, fake_labels, pullback, g_batch_stats, rng
):
  """One optax update of the generator only, through the (frozen) current discriminator.

  ``fakes``/``pullback``/``g_batch_stats`` come from :func:`generate`; the
  discriminator's parameters and statistics are read, never written.
  """

  def loss_fn(images):
    logits, _ = discriminate(
      discriminator,
      state.params["discriminator"],
      state.batch_stats["discriminator"],
      images,
      fake_labels,
      rng,
    )
    return losses.generator_loss(logits), logits  # non-saturating -log D(G(z))

  (loss, logits), d_images = jax.value_and_grad(loss_fn, has_aux=True)(fakes)
  (grads,) = pullback(d_images)
  g_params, g_opt = apply_updates(
    state.g_tx, grads, state.opt_state["generator"], state.params["generator"]
  )
  decay = ema_decay(state.step, float(gan_config.get("ema_decay", 0.999)))
  average = lambda avg, new: decay * avg + (1.0 - decay) * new  # noqa: E731
  ema = {
    "params": jax.tree.map(average, state.ema["params"], g_params),
    "batch_stats": jax.tree.map(average, state.ema["batch_stats"], g_batch_stats),
  }
  state = state.replace(
    params={**state.params, "generator": g_params},
    opt_state={**state.opt_state, "generator": g_opt},
    batch_stats={**state.batch_stats, "generator": g_batch_stats},
    ema=ema,
  )
  metrics = {
    "g_loss": loss,
    "d_fake_after": jnp.mean(jax.nn.sigmoid(logits)),
    "g_grad_norm": optax.global_norm(grads),
  }
  return state, metrics


# -- the time budget -------------------------------------------------------------------------------
def budget_stopper(gan_config):
  """``(should_stop(state) -> bool, measured)`` for ``gan.time_budget_s`` seconds of training.

  The clock starts at the first call (after the compiling first step) and is
  host-side state of this closure: a resumed run starts a new budget.
  ``gan.budget_clock='process'`` counts this process's CPU seconds instead of
  wall seconds: a fairer budget for comparing models on a machine shared with
  other jobs. ``measured`` (a dict, filled as the run goes) holds
  ``budget_seconds`` and ``budget_steps`` for the results.
  """
  budget = float(gan_config.get("time_budget_s", 0) or 0)
  clock = gan_config.get("budget_clock", "wall")
  if clock not in BUDGET_CLOCKS:
    raise ConfigError(f"gan.budget_clock must be 'wall' or 'process', not {clock!r}.")
  now_fn = time.time if clock == "wall" else time.process_time
  start: list[tuple[float, int]] = []
  measured: dict[str, float] = {}

  def should_stop(state) -> bool:
    if budget <= 0:
      return False
    jax.block_until_ready(state.step)  # time computed steps, not dispatched ones
    now, step = now_fn(), int(state.step)
    if not start:
      start.append((now, step))
      return False
    begin, first = start[0]
    measured.update(budget_seconds=now - begin, budget_steps=float(step - first))
    return now - begin >= budget

  return should_stop, measured


# -- the task --------------------------------------------------------------------------------------
def build(config, splits, num_steps) -> Task:
  """Alternating optax updates of the registered GAN pair ``config.model`` (module docstring).

  Loads (or trains once, with its own progress) the feature classifier
  ``eval.classifier`` of the report first; '' skips the classifier metrics.
  """
  ev, cfg = config.eval, config.gan
  classifier = None
  if ev.get("classifier"):
    classifier = feature_classifier.load_or_train(
      ev.classifier,
      tuple(ev.get("classifier_overrides", ())),
      workdir=ev.get("classifier_dir") or None,
    )
  train = splits["train"]
  num_classes, class_names = train.num_classes, train.class_names
  gan = create_gan(config, train.image_shape, num_classes)
  every = snapshot_every(config, len(train))
  d_steps = max(1, int(cfg.get("d_steps", 1)))
  should_stop, measured = budget_stopper(cfg)

  def grid(variables):
    return sample_grid(gan, cfg, num_classes, variables)

  def init(rng, batch):
    g_rng, d_rng, drop_rng = jax.random.split(rng, 3)
    g_vars = init_generator(gan.generator, gan.latent_dim, g_rng)
    images = to_signed(batch["image"][:2])
    labels = jnp.zeros((images.shape[0],), jnp.int32)
    d_vars = dict(
      gan.discriminator.init({"params": d_rng, "dropout": drop_rng}, images, labels, train=False)
    )
    params = {"generator": g_vars["params"], "discriminator": d_vars["params"]}
    batch_stats = {
      "generator": g_vars.get("batch_stats", {}),
      "discriminator": d_vars.get("batch_stats", {}),
    }
    g_tx = make_optimizer(config.g_optim, num_steps)
    d_tx = make_optimizer(config.d_optim, num_steps)
    ema = copy_tree({"params": params["generator"], "batch_stats": batch_stats["generator"]})
    num_slots = (num_steps or 0) // every + 1
    first = grid(ema)
    snapshots = jnp.zeros((num_slots, *first.shape), jnp.uint8).at[0].set(first)
    return GANState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state={
        "generator": g_tx.init(params["generator"]),
        "discriminator": d_tx.init(params["discriminator"]),
      },
      batch_stats=batch_stats,
      ema=ema,
      snapshots=snapshots,
      g_tx=g_tx,
      d_tx=d_tx,
    )

  def take_snapshot(state):
    slot = state.step // every
    take = (state.step % every == 0) & (slot < state.snapshots.shape[0])
    snapshots = jax.lax.cond(
      take, lambda s: s.at[slot].set(grid(state.ema)), lambda s: s, state.snapshots
    )
    return state.replace(snapshots=snapshots)

  def train_step(state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    real = to_signed(batch["image"])  # [B, H, W, C]
    labels = batch["label"]
    b = real.shape[0]
    metrics = {}
    for _ in range(d_steps):
      z_rng, d_rng, rng = jax.random.split(rng, 3)
      z = jax.random.normal(z_rng, (b, gan.latent_dim))
      # Each discriminator step sees the step's real batch and fresh fakes; the
      # generator reuses the last fakes (and their VJP).
      fakes, pullback, g_bs = generate(gan.generator, state, z, labels)
      state, metrics = discriminator_update(
        gan.discriminator, cfg, state, real, labels, fakes, labels, d_rng
      )
    state, g_metrics = generator_update(
      gan.discriminator, cfg, state, fakes, labels, pullback, g_bs, rng
    )
    metrics.update(g_metrics)
    state = state.replace(step=state.step + 1)
    return take_snapshot(state), metrics

  def eval_step(state, batch):
    """How real the discriminator finds held-out real images (inference mode)."""
    logits, _ = gan.discriminator.apply(
      {"params": state.params["discriminator"], "batch_stats": state.batch_stats["discriminator"]},
      to_signed(batch["image"]),
      batch["label"],
      train=False,
    )
    mask = batch["mask"]
    return {"d_real_prob": jnp.sum(jax.nn.sigmoid(logits) * mask), "count": jnp.sum(mask)}

  sample_uint8 = jax.jit(lambda v, z, y: to_uint8(sample(gan.generator, v, z, y)))

  def draw(variables, n: int, seed: int):
    return gan_report.draw_samples(sample_uint8, variables, n, seed, gan.latent_dim, num_classes)

  def initial_generator() -> dict:
    # The generator of step 0, re-created by the loop's rule (init_rng = first half of
    # split(key(seed))), then checked against the step-0 grid kept in the state.
    init_rng = jax.random.split(jax.random.key(config.seed))[0]
    return init_generator(gan.generator, gan.latent_dim, jax.random.split(init_rng, 3)[0])

  def report(state, ctx):
    workdir = ctx.workdir
    state = jax.device_get(state)
    results: dict[str, float] = {"steps_done": float(state.step), **measured}
    n = int(cfg.num_samples)
    seed = int(cfg.get("sample_seed", 2024))
    samples, sample_labels = draw(state.ema, n, seed)
    np.savez_compressed(os.path.join(workdir, "samples.npz"), images=samples, labels=sample_labels)

    filled = min(int(state.step) // every + 1, state.snapshots.shape[0])
    grids = [np.asarray(g) for g in state.snapshots[:filled]]
    steps = [k * every for k in range(filled)]
    if int(state.step) != steps[-1]:  # a run that stopped between snapshots
      grids.append(np.asarray(grid(state.ema)))
      steps.append(int(state.step))
    gan_report.snapshot_pictures(workdir, ctx.writer, grids, steps, int(cfg.grid_size))
    gan_report.sample_pictures(workdir, samples, sample_labels, class_names, gan.conditional)
    gan_report.loss_curves(workdir, writers.read_metrics(workdir))
    if classifier is None:
      return results

    test = ctx.splits.get("test") or ctx.splits["train"]
    count = min(n, len(test))
    test_images, train_images = gan_report.real_images(
      test, ctx.splits["train"], count, config.seed
    )
    initial = initial_generator()
    if not np.array_equal(np.asarray(grid(initial)), np.asarray(state.snapshots[0])):
      logging.warning(
        "the re-created initial generator differs from the one trained; "
        "fd_untrained describes a different random init."
      )
    untrained, _ = draw(initial, count, seed)
    last = {"params": state.params["generator"], "batch_stats": state.batch_stats["generator"]}
    last_samples, _ = draw(last, count, seed)
    metrics, fractions = gan_report.classifier_metrics(
      classifier,
      samples,
      sample_labels,
      test_images,
      train_images,
      untrained=untrained,
      last=last_samples,
      conditional=gan.conditional,
    )
    results.update(metrics)
    gan_report.class_histogram(
      workdir, classifier.class_names, fractions, count, metrics["class_entropy_bits"]
    )
    results.update(
      gan_report.effnet_frechet_distance(
        samples,
        test_images,
        train_images,
        int(ev.get("effnet_samples", 0) or 0),
        int(ev.get("effnet_size", 96)),
      )
    )
    return results

  return Task(init, train_step, eval_step, report, splits, should_stop=should_stop)
