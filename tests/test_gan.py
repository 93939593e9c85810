"""GANs: the models, the two halves of the jitted step, a tiny run end to end, exact resume."""

import json
import os
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision import configs
from vision.data.sources import Split
from vision.errors import ConfigError
from vision.evaluate.gan_report import effnet_frechet_distance
from vision.models.registry import create_model
from vision.ops import kernels
from vision.train import gan as gan_lib
from vision.train import loop
from vision.train.gan import (
  discriminate,
  discriminator_update,
  ema_decay,
  generate,
  generator_update,
  to_signed,
  to_uint8,
)

TINY = "experiments/gan.py:tiny"


def fake_split(n=64, shape=(28, 28, 1), seed=0) -> Split:
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, *shape)).astype(np.uint8)
  labels = (np.arange(n) % 10).astype(np.int32)
  return Split(
    "fake",
    "train",
    10,
    [f"c{i}" for i in range(10)],
    labels,
    lambda idx: {"image": images[idx], "label": labels[idx]},
    shape,
  )


def make_task(overrides=(), spec=TINY, num_steps=8):
  """The task, its model pair and config, its jitted initial state and a batch.

  ``eval.classifier=''``: the step tests need no feature classifier (build would train one).
  """
  config = configs.load_config(spec, ["eval.classifier=", *overrides])
  split = fake_split()
  task = gan_lib.build(config, {"train": split}, num_steps)
  gan = gan_lib.create_gan(config, split.image_shape, split.num_classes)
  batch = task.splits["train"].read(np.arange(config.batch_size))
  state = jax.jit(task.init)(jax.random.key(0), batch)
  return SimpleNamespace(task=task, gan=gan, config=config, state=state, batch=batch)


def leaves_equal(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def all_leaves_differ(a, b) -> bool:
  return all(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# -- models ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
  "name", ["dense_gan", "dcgan", "cdcgan", "dcgan_convt", "dcgan_tiny", "cdcgan_tiny"]
)
def test_models_map_noise_to_images_and_images_to_logits(name):
  gan = create_model(name, image_shape=(28, 28, 1), num_classes=10)
  z = jax.random.normal(jax.random.key(0), (3, gan.latent_dim))
  labels = jnp.array([0, 4, 9])
  g_vars = jax.eval_shape(lambda: gan.generator.init(jax.random.key(1), z, labels))
  images = jax.eval_shape(lambda v: gan.generator.apply(v, z, labels)[0], g_vars)
  assert images.shape == (3, 28, 28, 1)
  d_vars = jax.eval_shape(
    lambda: gan.discriminator.init(jax.random.key(2), jnp.zeros((3, 28, 28, 1)), labels)
  )
  logits = jax.eval_shape(
    lambda v: gan.discriminator.apply(v, jnp.zeros((3, 28, 28, 1)), labels)[0], d_vars
  )
  assert logits.shape == (3,)
  assert gan.conditional == name.startswith("cdcgan")


@pytest.mark.parametrize(
  "name, size, message",
  [
    ("dcgan", 30, "the DCGAN generator needs image sides divisible by 4, got 30x30"),
    ("dcgan_convt", 32, "this generator makes 28x28 images .* not 32x32"),
  ],
)
def test_generator_for_an_image_size_it_cannot_make_is_a_config_error(name, size, message):
  gan = create_model(name, image_shape=(size, size, 1), num_classes=10)
  z = jnp.zeros((2, gan.latent_dim))
  with pytest.raises(ConfigError, match=f"--config.data.image_size: {message}"):
    jax.eval_shape(lambda: gan.generator.init(jax.random.key(0), z, None))


@pytest.mark.parametrize("name", ["dense_gan", "dcgan", "cdcgan"])
def test_models_make_colour_32px_images_for_one_cifar10_class(name):
  gan = create_model(name, image_shape=(32, 32, 3), num_classes=10)
  z, labels = jnp.zeros((2, gan.latent_dim)), jnp.array([7, 7])
  g_vars = jax.eval_shape(lambda: gan.generator.init(jax.random.key(0), z, labels))
  images = jax.eval_shape(lambda v: gan.generator.apply(v, z, labels)[0], g_vars)
  assert images.shape == (2, 32, 32, 3)
  d_vars = jax.eval_shape(lambda x: gan.discriminator.init(jax.random.key(0), x, labels), images)
  logits = jax.eval_shape(lambda v, x: gan.discriminator.apply(v, x, labels)[0], d_vars, images)
  assert logits.shape == (2,)
  config = configs.load_config("experiments/gan.py:cifar10")
  assert config.data.name == "cifar10" and tuple(config.data.class_filter) == (7,)


def test_dcgan_matches_the_benchmark_architecture():
  # The TensorFlow DCGAN tutorial's model.summary(): 2,305,472 trainable generator
  # parameters (plus 25,472 batch-norm statistics) and 212,865 discriminator parameters.
  gan = create_model("dcgan")
  z = jnp.zeros((2, 100))
  g_vars = jax.eval_shape(lambda: gan.generator.init(jax.random.key(0), z))
  d_vars = jax.eval_shape(
    lambda: gan.discriminator.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)))
  )
  count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
  assert count(g_vars["params"]) == 2_305_472
  assert count(g_vars["batch_stats"]) == 25_472
  assert count(d_vars["params"]) == 212_865
  assert "bias" not in g_vars["params"]["project"]


@pytest.mark.slow
def test_generator_cpu_and_portable_kernels_agree_with_shared_parameters():
  gan = create_model("dcgan_tiny")
  z = jax.random.normal(jax.random.key(0), (4, gan.latent_dim))
  variables = jax.jit(gan.generator.init)(jax.random.key(1), z)
  outs = []
  for form in ("cpu", "portable"):
    with kernels.use(form):  # read at trace time: a fresh jitted function per form
      outs.append(jax.jit(lambda v, z: gan.generator.apply(v, z)[0])(variables, z))
  a, b = outs
  np.testing.assert_allclose(a, b, atol=1e-5)
  assert float(a.min()) >= -1.0 and float(a.max()) <= 1.0


def test_dcgan_init_is_normal_002():
  gan = create_model("dcgan")
  variables = jax.jit(gan.generator.init)(jax.random.key(0), jnp.zeros((1, 100)))
  kernel = np.asarray(variables["params"]["project"]["kernel"])
  assert abs(kernel.std() - 0.02) < 0.001 and abs(kernel.mean()) < 0.001
  scale = np.asarray(variables["params"]["bn0"]["scale"])
  assert abs(scale.mean() - 1.0) < 0.002 and 0.015 < scale.std() < 0.025


def test_uint8_round_trip():
  images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  np.testing.assert_array_equal(to_uint8(to_signed(images)), images)
  assert float(ema_decay(jnp.array(0), 0.999)) == pytest.approx(0.1)
  assert float(ema_decay(jnp.array(10**6), 0.999)) == pytest.approx(0.999)


# -- the step -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base():
  """One tiny task (with its model pair and config), its initial state and its jitted step,
  shared (compiling is the cost)."""
  made = make_task()
  return made, jax.device_get(made.state), made.batch, jax.jit(made.task.train_step)


@pytest.mark.slow
def test_one_step_changes_both_networks_and_the_average(base):
  task, before, batch, step = base
  after, metrics = step(before, batch, jax.random.key(3))
  after = jax.device_get(after)
  assert int(after.step) == 1
  for role in ("generator", "discriminator"):
    assert all_leaves_differ(before.params[role], after.params[role]), role
    assert not leaves_equal(before.opt_state[role], after.opt_state[role]), role
  assert all_leaves_differ(before.ema["params"], after.ema["params"])
  assert not leaves_equal(before.batch_stats["generator"], after.batch_stats["generator"])
  assert set(metrics) >= {"d_loss", "g_loss", "d_real", "d_fake"}
  assert all(np.isfinite(float(v)) for v in metrics.values())


@pytest.mark.slow
def test_each_half_of_the_step_touches_only_its_own_network(base):
  made, state, batch, _ = base
  gan, gan_config = made.gan, made.config.gan
  real, labels = to_signed(batch["image"]), jnp.asarray(batch["label"])
  z = jax.random.normal(jax.random.key(0), (len(labels), gan.latent_dim))

  def d_loss_of_generator(g_params):
    # The discriminator's loss as a function of the generator: the fakes enter it
    # as constants, so its gradient with respect to the generator must be zero.
    fakes, _, _ = generate(
      gan.generator, state.replace(params={**state.params, "generator": g_params}), z, labels
    )
    _, metrics = discriminator_update(
      gan.discriminator, gan_config, state, real, labels, fakes, labels, jax.random.key(1)
    )
    return metrics["d_loss"]

  def g_loss(g_params):
    (images, _), _ = gan.generator.apply(
      {"params": g_params, "batch_stats": state.batch_stats["generator"]},
      z,
      labels,
      train=True,
      mutable=["batch_stats"],
    )
    logits, _ = discriminate(
      gan.discriminator,
      state.params["discriminator"],
      state.batch_stats["discriminator"],
      images,
      labels,
      jax.random.key(2),
    )
    return jnp.mean(jax.nn.softplus(-logits))  # -log D(G(z)), computed independently

  @jax.jit
  def halves(state):
    fakes, pullback, g_bs = generate(gan.generator, state, z, labels)
    after_d, _ = discriminator_update(
      gan.discriminator, gan_config, state, real, labels, fakes, labels, jax.random.key(1)
    )
    # The generator's gradient as generator_update computes it (through the VJP of
    # generate), against plain jax.grad through both networks, same discriminator.
    d_images = jax.grad(
      lambda x: jnp.mean(
        jax.nn.softplus(
          -discriminate(
            gan.discriminator,
            state.params["discriminator"],
            state.batch_stats["discriminator"],
            x,
            labels,
            jax.random.key(2),
          )[0]
        )
      )
    )(fakes)
    pulled = pullback(d_images)[0]
    after_g, g_metrics = generator_update(
      gan.discriminator, gan_config, after_d, fakes, labels, pullback, g_bs, jax.random.key(2)
    )
    return (
      after_d,
      after_g,
      g_metrics,
      pulled,
      jax.grad(g_loss)(state.params["generator"]),
      jax.grad(d_loss_of_generator)(state.params["generator"]),
    )

  after_d, after_g, g_metrics, pulled, direct, d_to_g = jax.device_get(halves(state))
  # Discriminator half: the discriminator changes, nothing of the generator does.
  assert all_leaves_differ(state.params["discriminator"], after_d.params["discriminator"])
  assert leaves_equal(state.params["generator"], after_d.params["generator"])
  assert leaves_equal(state.opt_state["generator"], after_d.opt_state["generator"])
  assert leaves_equal(state.batch_stats["generator"], after_d.batch_stats["generator"])
  assert leaves_equal(state.ema, after_d.ema)
  assert all(float(np.abs(g).max()) == 0.0 for g in jax.tree.leaves(d_to_g))
  # Generator half: the generator changes, nothing of the discriminator does.
  assert all_leaves_differ(after_d.params["generator"], after_g.params["generator"])
  assert leaves_equal(after_d.params["discriminator"], after_g.params["discriminator"])
  assert leaves_equal(after_d.opt_state["discriminator"], after_g.opt_state["discriminator"])
  assert leaves_equal(after_d.batch_stats["discriminator"], after_g.batch_stats["discriminator"])
  # The pulled-back gradient is the exact one.
  for got, want in zip(jax.tree.leaves(pulled), jax.tree.leaves(direct)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_snapshots_of_the_fixed_noise_grid_every_n_steps(base):
  _, state, batch, step = base  # tiny, num_steps=8: snapshot_every=4 -> slots 0, 4, 8
  assert state.snapshots.shape == (3, 16, 28, 28, 1) and state.snapshots.dtype == np.uint8
  first = np.asarray(state.snapshots[0])
  assert first.any()
  for _ in range(4):
    state, _ = step(state, batch, jax.random.key(3))
  np.testing.assert_array_equal(state.snapshots[0], first)
  assert not np.array_equal(state.snapshots[1], first)
  assert not np.asarray(state.snapshots[2]).any()  # not reached yet


@pytest.mark.slow
def test_discriminator_steps_and_label_smoothing(base):
  _, before, batch, base_step = base
  made = make_task(["gan.d_steps=2", "gan.label_smoothing=0.1"])
  after, _ = jax.jit(made.task.train_step)(made.state, batch, jax.random.key(3))
  # Adam counts its updates: two for the discriminator, one for the generator.
  count = lambda opt: int(jax.tree.leaves(opt)[0])  # noqa: E731
  assert count(after.opt_state["discriminator"]) == 2 and count(after.opt_state["generator"]) == 1
  reference, _ = base_step(before, batch, jax.random.key(3))
  assert not leaves_equal(after.params["discriminator"], reference.params["discriminator"])


def test_class_filter_keeps_one_class_in_every_split(monkeypatch):
  config = configs.load_config(TINY, ["data.class_filter=(3,)"])
  loaded = {"train": fake_split(), "test": fake_split(seed=1)}
  # The loop filters the splits it loads ('train[:512]' -> loaded['train']).
  monkeypatch.setattr(loop, "load_split", lambda data, spec: loaded[spec.split("[")[0]])
  splits = loop.load_splits(config)
  assert set(splits) == {"train", "test"}
  for split in splits.values():
    assert len(split) > 0 and set(split.labels.tolist()) == {3}
    assert set(split.read(np.arange(len(split)))["label"].tolist()) == {3}


def test_time_budget_stops_after_the_first_timed_step():
  config = configs.load_config(TINY, ["gan.time_budget_s=1e-9", "eval.classifier="])
  task = gan_lib.build(config, {"train": fake_split()}, 8)
  state = SimpleNamespace(step=jnp.array(3))
  assert not task.should_stop(state)  # starts the clock (after the compiling step)
  assert task.should_stop(state)
  task = gan_lib.build(configs.load_config(TINY, ["eval.classifier="]), {"train": fake_split()}, 8)
  assert not task.should_stop(state) and not task.should_stop(state)


# -- end to end -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier_cache(tmp_path_factory):
  # One tiny feature classifier for this module's runs, never the user's cache.
  path = str(tmp_path_factory.mktemp("classifiers"))
  old = os.environ.get("VISION_CLASSIFIER_CACHE")
  os.environ["VISION_CLASSIFIER_CACHE"] = path
  yield path
  if old is None:
    os.environ.pop("VISION_CLASSIFIER_CACHE", None)
  else:
    os.environ["VISION_CLASSIFIER_CACHE"] = old


@pytest.mark.slow
def test_tiny_conditional_run_writes_metrics_samples_and_pictures(
  data_env, classifier_cache, tmp_path
):
  config = configs.load_config("experiments/gan.py:cdcgan,tiny")
  results = loop.run(config, str(tmp_path))
  for key in (
    "fd",
    "fd_real_baseline",
    "fd_untrained",
    "fd_last",
    "class_entropy_bits",
    "label_accuracy",
    "classifier_test_accuracy",
  ):
    assert np.isfinite(results[key]), key
  assert 0.0 <= results["class_entropy_bits"] <= np.log2(10) + 1e-9
  assert results["fd"] >= 0 and results["fd_real_baseline"] >= 0
  saved = json.load(open(tmp_path / "results.json"))
  assert saved["fd"] == pytest.approx(results["fd"])
  samples = np.load(tmp_path / "samples.npz")
  assert samples["images"].dtype == np.uint8 and samples["images"].shape == (256, 28, 28, 1)
  for name in (
    "samples.png",
    "evolution.png",
    "evolution.gif",
    "gan_losses.png",
    "class_grid.png",
    "class_histogram.png",
    "samples_fixed_noise.png",
  ):
    assert os.path.getsize(tmp_path / name) > 0, name
  assert sorted(os.listdir(tmp_path / "grids")) == [f"step_{s:07d}.png" for s in (0, 4, 8, 12)]
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert any("train/d_loss" in r and "train/g_loss" in r for r in records)


@pytest.mark.slow
def test_effnet_distance_is_computed_when_available_and_skipped_when_off():
  images = np.random.default_rng(0).integers(0, 256, (24, 28, 28, 1)).astype(np.uint8)
  assert effnet_frechet_distance(images, images, images, 0, 32) == {}
  try:
    import vision.models.backbones  # noqa: F401
    from vision.weights import load_pretrained  # noqa: F401
  except ImportError:
    pytest.skip("EfficientNet-Lite0 backbone not importable")
  result = effnet_frechet_distance(images[:8], images[8:16], images[16:], 8, 32)
  if not result:
    pytest.skip("EfficientNet-Lite0 weights not available")
  assert result["fd_effnet_samples"] == 8.0
  assert result["fd_effnet"] >= 0 and result["fd_effnet_real_baseline"] >= 0
