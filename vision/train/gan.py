"""GAN training: one jitted step updates the discriminator, then the generator.

What one step does (``GANTask.train_step``), for a batch of real images in [-1, 1]:

1. ``generate``: the generator (batch norm in training mode) maps fresh noise
   to fakes and keeps the VJP of that forward pass.
2. ``discriminator_update``: non-saturating logistic loss on real (target
   ``1 - label_smoothing``) and the fakes (target 0, gradient stopped), one optax
   update of the discriminator with its own optimizer state. Repeated
   ``d_steps`` times; earlier repetitions draw their own fakes.
3. ``generator_update``: the gradient of ``-log D(G(z))`` through the *updated*
   discriminator with respect to the same fakes, pulled back through the stored
   VJP (the generator's forward pass is not recomputed, as in the PyTorch DCGAN
   tutorial), one optax update of the generator, then the exponential moving
   average of its weights and batch statistics.

Each half touches only its own network (tests check this). Everything a step
changes lives in one :class:`GANState` pytree with ``.step`` and ``.params =
{'generator', 'discriminator'}``, so the foundation's loop, orbax checkpoints
and finiteness checks handle it unchanged and a resumed run continues exactly.
The fixed-noise sample grid of every epoch is computed inside the step (of the
averaged generator) and carried in the state, so it is checkpointed too;
``finalize`` writes those grids, their evolution, 10,000 samples and the
metrics (Fréchet distance in the project's classifier features, its
real-vs-real baseline, class entropy).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision import losses, viz
from vision.models.registry import create_model
from vision.train.optim import make_optimizer
from vision.train.task import Task

MODEL_META_FIELDS = ("name", "dtype")
ROLES = ("generator", "discriminator")


class GANState(flax.struct.PyTreeNode):
  """Both players' parameters, optimizer states and batch statistics, and the average.

  ``params``, ``opt_state`` and ``batch_stats`` are dicts keyed by ``'generator'``
  and ``'discriminator'``; ``ema`` holds the generator's averaged ``params`` and
  ``batch_stats``; ``snapshots`` [S, G, H, W, C] uint8 the fixed-noise grids of
  the averaged generator, slot ``k`` taken after step ``k * snapshot_every``.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  batch_stats: Any
  ema: Any
  snapshots: jax.Array
  g_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)
  d_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)


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


class GANTask(Task):
  """Alternating optax updates of a registered :class:`vision.models.gan.GAN` pair."""

  def __init__(self, config, splits):
    super().__init__(config, splits)
    keep = tuple(config.data.get("class_filter", ()) or ())
    if keep:
      # One class of CIFAR-10 (the lesson's task), a few digits ...: filter every
      # split here, so vision/data needs no new option. The loop reads
      # splits['train'] after building the task.
      for role, split in list(splits.items()):
        splits[role] = split.subset(np.flatnonzero(np.isin(split.labels, keep)))
    train = splits["train"]
    self.num_classes = train.num_classes
    self.class_names = train.class_names
    self.image_shape = tuple(train.image_shape)
    kwargs = {k: v for k, v in config.model.items() if k not in MODEL_META_FIELDS}
    self.gan = create_model(
      config.model.name,
      image_shape=self.image_shape,
      num_classes=self.num_classes,
      dtype=jnp.dtype(config.model.get("dtype", "float32")),
      **kwargs,
    )
    self.generator, self.discriminator = self.gan.generator, self.gan.discriminator
    self.latent_dim = self.gan.latent_dim
    self.conditional = self.gan.conditional
    self.gan_config = config.gan
    self.grid_size = int(config.gan.grid_size)
    self._clock: tuple[float, int] | None = None
    self.measured: dict[str, float] = {}

  # -- state --------------------------------------------------------------------------------------
  def snapshot_every(self) -> int:
    every = int(self.gan_config.get("snapshot_every", 0) or 0)
    if every <= 0:  # one epoch
      every = max(1, len(self.splits["train"]) // self.config.batch_size)
    return every

  def fixed_inputs(self) -> tuple[jax.Array, jax.Array]:
    """The noise and labels of the sample grids: the same at every snapshot and in every run."""
    key = jax.random.key(int(self.gan_config.get("grid_seed", 1234)))
    z = jax.random.normal(key, (self.grid_size, self.latent_dim))
    labels = jnp.arange(self.grid_size, dtype=jnp.int32) % self.num_classes
    return z, labels

  def init_generator(self, rng) -> dict:
    z = jnp.zeros((2, self.latent_dim))
    labels = jnp.zeros((2,), jnp.int32)
    return dict(self.generator.init(rng, z, labels, train=False))

  def init(self, rng, batch):
    g_rng, d_rng, drop_rng = jax.random.split(rng, 3)
    g_vars = self.init_generator(g_rng)
    images = to_signed(batch["image"][:2])
    labels = jnp.zeros((images.shape[0],), jnp.int32)
    d_vars = dict(
      self.discriminator.init({"params": d_rng, "dropout": drop_rng}, images, labels, train=False)
    )
    params = {"generator": g_vars["params"], "discriminator": d_vars["params"]}
    batch_stats = {
      "generator": g_vars.get("batch_stats", {}),
      "discriminator": d_vars.get("batch_stats", {}),
    }
    g_tx = make_optimizer(self.config.g_optim, self.num_steps)
    d_tx = make_optimizer(self.config.d_optim, self.num_steps)
    # Copies: the state is donated to the step, and one buffer must not appear twice in it.
    ema = jax.tree.map(
      lambda x: jnp.array(x, copy=True),
      {"params": params["generator"], "batch_stats": batch_stats["generator"]},
    )
    num_slots = (self.num_steps or 0) // self.snapshot_every() + 1
    first = self.sample_grid(ema)
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

  # -- the two players ----------------------------------------------------------------------------
  def generate(self, state, z, labels):
    """Fakes from the training generator (batch statistics), with the VJP of the forward pass.

    Returns ``(fakes [B, H, W, C], pullback, new generator batch_stats)``;
    ``pullback(d_fakes)`` returns ``(d_generator_params,)``.
    """

    def forward(g_params):
      (images, _), updates = self.generator.apply(
        {"params": g_params, "batch_stats": state.batch_stats["generator"]},
        z,
        labels,
        train=True,
        mutable=["batch_stats"],
      )
      return images, updates.get("batch_stats", {})

    fakes, pullback, batch_stats = jax.vjp(forward, state.params["generator"], has_aux=True)
    return fakes, pullback, batch_stats

  def discriminate(self, d_params, batch_stats, images, labels, rng):
    """Discriminator logits [B] in training mode (dropout on, batch statistics)."""
    (logits, _), updates = self.discriminator.apply(
      {"params": d_params, "batch_stats": batch_stats},
      images,
      labels,
      train=True,
      rngs={"dropout": rng},
      mutable=["batch_stats"],
    )
    return logits, updates.get("batch_stats", {})

  def discriminator_update(self, state, real, real_labels, fakes, fake_labels, rng):
    """One optax update of the discriminator only. ``fakes`` are treated as constants."""
    fakes = jax.lax.stop_gradient(fakes)
    smoothing = float(self.gan_config.get("label_smoothing", 0.0))
    real_rng, fake_rng = jax.random.split(rng)

    def loss_fn(d_params):
      bs = state.batch_stats["discriminator"]
      real_logits, bs = self.discriminate(d_params, bs, real, real_labels, real_rng)
      fake_logits, bs = self.discriminate(d_params, bs, fakes, fake_labels, fake_rng)
      # One-sided label smoothing: real targets 1 - s, fake targets stay 0.
      loss = jnp.mean(
        losses.binary_cross_entropy_with_logits(real_logits, 1.0 - smoothing)
      ) + jnp.mean(losses.binary_cross_entropy_with_logits(fake_logits, 0.0))
      return loss, (real_logits, fake_logits, bs)

    (loss, (real_logits, fake_logits, d_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params["discriminator"]
    )
    updates, d_opt = state.d_tx.update(
      grads, state.opt_state["discriminator"], state.params["discriminator"]
    )
    d_params = optax.apply_updates(state.params["discriminator"], updates)
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

  def generator_update(self, state, fakes, fake_labels, pullback, g_batch_stats, rng):
    """One optax update of the generator only, through the (frozen) current discriminator.

    ``fakes``/``pullback``/``g_batch_stats`` come from :meth:`generate`; the
    discriminator's parameters and statistics are read, never written.
    """

    def loss_fn(images):
      logits, _ = self.discriminate(
        state.params["discriminator"], state.batch_stats["discriminator"], images, fake_labels, rng
      )
      return losses.generator_loss(logits), logits  # non-saturating -log D(G(z))

    (loss, logits), d_images = jax.value_and_grad(loss_fn, has_aux=True)(fakes)
    (grads,) = pullback(d_images)
    updates, g_opt = state.g_tx.update(
      grads, state.opt_state["generator"], state.params["generator"]
    )
    g_params = optax.apply_updates(state.params["generator"], updates)
    decay = ema_decay(state.step, float(self.gan_config.get("ema_decay", 0.999)))
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

  def train_step(self, state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    real = to_signed(batch["image"])  # [B, H, W, C]
    labels = batch["label"]
    b = real.shape[0]
    d_steps = max(1, int(self.gan_config.get("d_steps", 1)))
    metrics = {}
    for _ in range(d_steps):
      z_rng, d_rng, rng = jax.random.split(rng, 3)
      z = jax.random.normal(z_rng, (b, self.latent_dim))
      # Each discriminator step sees the step's real batch and fresh fakes; the
      # generator reuses the last fakes (and their VJP).
      fakes, pullback, g_bs = self.generate(state, z, labels)
      state, metrics = self.discriminator_update(state, real, labels, fakes, labels, d_rng)
    state, g_metrics = self.generator_update(state, fakes, labels, pullback, g_bs, rng)
    metrics.update(g_metrics)
    state = state.replace(step=state.step + 1)
    state = self.take_snapshot(state)
    return state, metrics

  # -- sampling -----------------------------------------------------------------------------------
  def sample(self, variables, z, labels) -> jax.Array:
    """Images in [-1, 1] from a generator in inference mode (running batch statistics)."""
    images, _ = self.generator.apply(variables, z, labels, train=False)
    return images

  def sample_grid(self, variables) -> jax.Array:
    z, labels = self.fixed_inputs()
    return to_uint8(self.sample(variables, z, labels))  # [G, H, W, C]

  def take_snapshot(self, state):
    every = self.snapshot_every()
    slot = state.step // every
    take = (state.step % every == 0) & (slot < state.snapshots.shape[0])
    snapshots = jax.lax.cond(
      take, lambda s: s.at[slot].set(self.sample_grid(state.ema)), lambda s: s, state.snapshots
    )
    return state.replace(snapshots=snapshots)

  # -- evaluation during training -----------------------------------------------------------------
  def eval_step(self, state, batch):
    """How real the discriminator finds held-out real images (inference mode)."""
    logits, _ = self.discriminator.apply(
      {"params": state.params["discriminator"], "batch_stats": state.batch_stats["discriminator"]},
      to_signed(batch["image"]),
      batch["label"],
      train=False,
    )
    mask = batch["mask"]
    return {"d_real_prob": jnp.sum(jax.nn.sigmoid(logits) * mask), "count": jnp.sum(mask)}

  def should_stop(self, state) -> bool:
    """Stops at ``gan.time_budget_s`` seconds of training (first step's compile excluded).

    ``gan.budget_clock='process'`` counts this process's CPU seconds instead of wall
    seconds: a fairer budget for comparing models on a machine shared with other jobs.
    """
    budget = float(self.gan_config.get("time_budget_s", 0) or 0)
    if budget <= 0:
      return False
    jax.block_until_ready(state.step)  # time computed steps, not dispatched ones
    clock = self.gan_config.get("budget_clock", "wall")
    if clock not in ("wall", "process"):
      raise ValueError(f"gan.budget_clock must be 'wall' or 'process', not {clock!r}.")
    now = time.time() if clock == "wall" else time.process_time()
    step = int(state.step)
    if self._clock is None:
      self._clock = (now, step)
      return False
    start, first = self._clock
    self.measured = {"budget_seconds": now - start, "budget_steps": float(step - first)}
    return now - start >= budget

  # -- final evaluation and pictures --------------------------------------------------------------
  def initial_generator(self) -> dict:
    """The generator of step 0, re-created by the loop's rule (``init_rng`` = first half of
    ``split(key(seed))``) and checked against the step-0 grid kept in the state."""
    init_rng = jax.random.split(jax.random.key(self.config.seed))[0]
    return self.init_generator(jax.random.split(init_rng, 3)[0])

  def draw_samples(self, variables, n: int, seed: int, batch_size: int = 500):
    """``n`` uint8 samples (and their class labels, balanced) from a generator in inference mode."""
    sample = jax.jit(lambda v, z, y: to_uint8(self.sample(v, z, y)))
    images, labels = [], []
    for i, start in enumerate(range(0, n, batch_size)):
      z = jax.random.normal(
        jax.random.fold_in(jax.random.key(seed), i), (batch_size, self.latent_dim)
      )
      y = (jnp.arange(start, start + batch_size, dtype=jnp.int32)) % self.num_classes
      images.append(np.asarray(jax.device_get(sample(variables, z, y))))
      labels.append(np.asarray(y))
    return np.concatenate(images)[:n], np.concatenate(labels)[:n]

  def finalize(self, state, ctx):
    cfg, ev, workdir = self.gan_config, self.config.eval, ctx.workdir
    state = jax.device_get(state)
    results: dict[str, float] = {"steps_done": float(state.step), **self.measured}
    n = int(cfg.num_samples)
    seed = int(cfg.get("sample_seed", 2024))
    samples, sample_labels = self.draw_samples(state.ema, n, seed)
    np.savez_compressed(os.path.join(workdir, "samples.npz"), images=samples, labels=sample_labels)
    self.write_pictures(state, ctx, samples, sample_labels)

    if not ev.get("classifier"):
      return results
    from vision.evaluate import frechet
    from vision.evaluate.classifier_features import load_classifier

    classifier = load_classifier(
      ev.classifier,
      tuple(ev.get("classifier_overrides", ())),
      workdir=ev.get("classifier_dir") or None,
    )
    test = ctx.splits.get("test") or self.splits["train"]
    count = min(n, len(test))
    rng = np.random.default_rng(self.config.seed)
    pick = lambda split: np.sort(rng.permutation(len(split))[:count])  # noqa: E731
    test_images = test.read(pick(test))["image"]
    train_images = self.splits["train"].read(pick(self.splits["train"]))["image"]
    test_features, test_logits = classifier(test_images)
    train_features, _ = classifier(train_images)
    gen_features, gen_logits = classifier(samples[:count])
    fd = frechet.frechet_distance_of_features
    stats_test = frechet.gaussian_stats(test_features)
    fd_to_test = lambda f: frechet.frechet_distance(*frechet.gaussian_stats(f), *stats_test)  # noqa: E731

    initial = self.initial_generator()
    if not np.array_equal(np.asarray(self.sample_grid(initial)), np.asarray(state.snapshots[0])):
      logging.warning(
        "the re-created initial generator differs from the one trained; "
        "fd_untrained describes a different random init."
      )
    untrained, _ = self.draw_samples(initial, count, seed)
    last = {"params": state.params["generator"], "batch_stats": state.batch_stats["generator"]}
    last_samples, _ = self.draw_samples(last, count, seed)
    entropy, fractions = frechet.class_entropy_bits(gen_logits.argmax(-1), classifier.num_classes)
    real_entropy, real_fractions = frechet.class_entropy_bits(
      test_logits.argmax(-1), classifier.num_classes
    )
    results.update(
      fd=fd_to_test(gen_features),
      fd_real_baseline=fd(train_features, test_features),
      fd_untrained=fd_to_test(classifier(untrained)[0]),
      fd_last=fd_to_test(classifier(last_samples)[0]),
      fd_samples=float(count),
      class_entropy_bits=entropy,
      class_entropy_bits_real=real_entropy,
      classifier_test_accuracy=classifier.test_accuracy,
    )
    if self.conditional:
      # Does the classifier see the class the generator was asked for?
      results["label_accuracy"] = float(np.mean(gen_logits.argmax(-1) == sample_labels[:count]))
    for name, fraction in zip(classifier.class_names, fractions):
      results[f"generated_class_fraction/{name}"] = float(fraction)
    viz.plot_class_histogram(
      os.path.join(workdir, "class_histogram.png"),
      classifier.class_names,
      {"generated": fractions, "real test": real_fractions},
      title=f"classes of {count} samples (entropy {entropy:.3f} bits)",
    )
    effnet = effnet_frechet_distance(
      samples,
      test_images,
      train_images,
      int(ev.get("effnet_samples", 0) or 0),
      int(ev.get("effnet_size", 96)),
    )
    results.update(effnet)
    return results

  def write_pictures(self, state, ctx, samples, sample_labels) -> None:
    workdir = ctx.workdir
    every = self.snapshot_every()
    filled = min(int(state.step) // every + 1, state.snapshots.shape[0])
    grids = [np.asarray(g) for g in state.snapshots[:filled]]
    steps = [k * every for k in range(filled)]
    if int(state.step) != steps[-1]:  # a run that stopped between snapshots
      grids.append(np.asarray(self.sample_grid(state.ema)))
      steps.append(int(state.step))
    ncols = int(np.ceil(np.sqrt(self.grid_size)))
    os.makedirs(os.path.join(workdir, "grids"), exist_ok=True)
    for step, grid in zip(steps, grids):
      mosaic = viz.image_grid(grid, ncols)
      viz.save_image(os.path.join(workdir, "grids", f"step_{step:07d}.png"), mosaic)
      ctx.writer.write_images(step, {"samples/fixed_noise": mosaic})
    viz.save_image(
      os.path.join(workdir, "samples_fixed_noise.png"), viz.image_grid(grids[-1], ncols)
    )
    viz.evolution_strip(os.path.join(workdir, "evolution.png"), grids, steps, ncols=10)
    viz.save_gif(os.path.join(workdir, "evolution.gif"), [viz.image_grid(g, ncols) for g in grids])
    viz.save_grid(os.path.join(workdir, "samples.png"), samples[:100], ncols=10)
    if self.conditional:
      per_class = [samples[sample_labels == c][:10] for c in range(self.num_classes)]
      viz.class_rows(os.path.join(workdir, "class_grid.png"), per_class, self.class_names)
    from vision.train import writers

    records = writers.read_metrics(workdir)
    if records:
      viz.plot_gan_losses(os.path.join(workdir, "gan_losses.png"), records)


def effnet_frechet_distance(
  samples, test_images, train_images, count: int, size: int
) -> dict[str, float]:
  """``fd_effnet`` and its real baseline in EfficientNet-Lite0 pooled features, when the
  backbone and its weights are available; ``{}`` (with a log line) when not or when off."""
  if count <= 0:
    return {}
  try:
    from vision.weights import load_pretrained

    model, variables = load_pretrained("efficientnet_lite0", num_classes=None)
  except Exception as e:  # noqa: BLE001 - optional metric: any missing piece skips it
    logging.warning(
      "fd_effnet skipped: EfficientNet-Lite0 unavailable (%s: %s)", type(e).__name__, str(e)[:200]
    )
    return {}
  from vision.evaluate import frechet

  @jax.jit
  def features(variables, images):  # weights as an argument, not baked-in constants
    x = images.astype(jnp.float32) / 255.0
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)  # grey -> RGB
    x = jax.image.resize(x, (x.shape[0], size, size, 3), "bilinear")
    pooled, _ = model.apply(variables, x)  # num_classes=None: the pooled features
    return pooled.reshape(pooled.shape[0], -1)

  count = min(count, len(samples), len(test_images), len(train_images))

  def extract(images, batch_size=100):
    images = images[:count]
    out = []
    for start in range(0, len(images), batch_size):
      chunk = images[start : start + batch_size]
      pad = batch_size - len(chunk)
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)]) if pad else chunk
      out.append(
        np.asarray(jax.device_get(features(variables, chunk)), np.float64)[: batch_size - pad]
      )
    return np.concatenate(out)

  test = extract(test_images)
  return {
    "fd_effnet": frechet.frechet_distance_of_features(extract(samples), test),
    "fd_effnet_real_baseline": frechet.frechet_distance_of_features(extract(train_images), test),
    "fd_effnet_samples": float(count),
  }
