"""Autoencoders, VAEs and the AAE: architectures, bounds, a trained discriminator, end to end."""

import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision import configs
from vision.errors import ConfigError
from vision.evaluate import elbo, image_quality
from vision.models.registry import create_model
from vision.ops import kernels
from vision.train import autoencoding, generative, loop

IMAGES = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))


def _init(model, x):
  return model.init({"params": jax.random.key(1), "latent": jax.random.key(2)}, x)


@pytest.mark.slow
@pytest.mark.parametrize("input_size,latent_dim", [(0, 0), (0, 2), (14, 0), (7, 0)])
def test_conv_autoencoder_shapes(input_size, latent_dim):
  model = create_model("conv_autoencoder", latent_dim=latent_dim, input_size=input_size)
  x = IMAGES[:, :input_size, :input_size] if input_size else IMAGES
  logits, features = model.apply(_init(model, x), x)
  assert logits.shape == (4, 28, 28, 1)
  assert features["code"].shape == (4, 4, 4, 8)  # a 128-value code (4 x 4 x 8)
  if latent_dim:
    assert features["latent"].shape == (4, 2)


@pytest.mark.slow
def test_conv_vae_is_the_benchmark_architecture():
  model = create_model("conv_vae", latent_dim=2)
  params = _init(model, IMAGES)["params"]
  shapes = {
    "/".join(k.key for k in path): tuple(v.shape)
    for path, v in jax.tree_util.tree_leaves_with_path(params)
    if path[-1].key == "kernel"
  }
  assert shapes == {
    "encoder/conv1/kernel": (3, 3, 1, 32),
    "encoder/conv2/kernel": (3, 3, 32, 64),
    "encoder/posterior/kernel": (7 * 7 * 64, 4),
    "decoder/projection/kernel": (2, 7 * 7 * 32),
    "decoder/deconv1/kernel": (3, 3, 32, 64),
    "decoder/deconv2/kernel": (3, 3, 64, 32),
    "decoder/logits/kernel": (3, 3, 32, 1),
  }
  logits, features = model.apply({"params": params}, IMAGES, rngs={"latent": jax.random.key(3)})
  assert logits.shape == (4, 28, 28, 1) and features["z"].shape == (4, 2)
  # Both kernel forms give the same decoder (the choice is read at trace time).
  z = jnp.ones((2, 2))
  outs = []
  for form in ("cpu", "portable"):
    with kernels.use(form):
      outs.append(model.apply({"params": params}, z, method="decode"))
  np.testing.assert_allclose(outs[0], outs[1], atol=1e-4)


def test_dense_vae_and_aae_shapes():
  vae = create_model("dense_vae", latent_dim=3)
  variables = _init(vae, IMAGES)
  mean, logvar = vae.apply(variables, IMAGES, method="encode")
  assert mean.shape == logvar.shape == (4, 3)
  assert vae.apply(variables, mean, method="decode").shape == (4, 28, 28, 1)
  aae = create_model("aae", latent_dim=5, hidden=(32,), discriminator_hidden=(16,))
  logits, features = aae.apply(_init(aae, IMAGES), IMAGES)
  assert logits.shape == (4, 28, 28, 1) and features["prior_logits"].shape == (4,)


def test_superres_net_starts_at_bicubic():
  for scale in (2, 4):
    model = create_model("superres_net", scale=scale, width=8, depth=2)
    low = image_quality.average_downsample(IMAGES, scale)
    logits, _ = model.apply(_init(model, low), low)
    bicubic = image_quality.bicubic_upsample(low, scale)
    np.testing.assert_allclose(jax.nn.sigmoid(logits), jnp.clip(bicubic, 1e-3, 1 - 1e-3), atol=1e-5)


def test_iwae_bound_is_below_the_negative_elbo():
  model = create_model("conv_vae", latent_dim=2)
  x = (IMAGES > 0.5).astype(jnp.float32)
  variables = _init(model, x)
  encode = lambda x: model.apply(variables, x, method="encode")  # noqa: E731
  decode = lambda z: model.apply(variables, z, method="decode")  # noqa: E731
  neg_elbo = jax.jit(lambda x, r: elbo.negative_elbo(encode, decode, x, r, num_samples=50))(
    x, jax.random.key(4)
  )
  log_w = jax.jit(lambda x, r: elbo.importance_log_weights(encode, decode, x, r, 100, 25))(
    x, jax.random.key(5)
  )
  assert log_w.shape == (100, 4)
  iwae = elbo.iwae_nll(log_w)
  # Per image, with the same samples: logsumexp(log w) - log K >= mean(log w) (Jensen).
  assert bool(jnp.all(iwae <= -jnp.mean(log_w, 0) + 1e-3))
  # Against the analytic-KL negative ELBO (50 samples), on every image of the batch.
  assert bool(jnp.all(iwae <= neg_elbo["neg_elbo"])), (iwae, neg_elbo["neg_elbo"])
  np.testing.assert_allclose(neg_elbo["neg_elbo"], neg_elbo["recon"] + neg_elbo["kl"], rtol=1e-6)
  # The average importance weight estimates the same quantity as the ELBO's samples.
  np.testing.assert_allclose(-jnp.mean(log_w, 0), neg_elbo["neg_elbo"], rtol=0.05)


def test_fixed_binarization_is_fixed_and_unbiased():
  grey = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1)).astype(np.uint8)
  a, b = elbo.fixed_binarization(grey, 0), elbo.fixed_binarization(grey, 0)
  np.testing.assert_array_equal(a, b)
  assert set(np.unique(a)) <= {0.0, 1.0}
  assert abs(a.mean() - grey.mean() / 255) < 0.01


@pytest.mark.slow
def test_aae_step_trains_the_discriminator():
  # A fast discriminator and a frozen regularizer, so 30 steps are enough for D to learn.
  config = configs.load_config(
    "experiments/aae.py:tiny", ["aae.disc_learning_rate=0.01", "aae.gen_learning_rate=0.0"]
  )
  task = generative.build(config, {"train": types.SimpleNamespace(image_shape=(28, 28, 1))}, 30)
  batch = {"image": (np.asarray(IMAGES.repeat(8, 0)) * 255).astype(np.uint8)}
  state = task.init(jax.random.key(0), batch)
  start = jax.tree.map(np.asarray, state.params)
  step = jax.jit(task.train_step)
  history = []
  for _ in range(30):
    state, metrics = step(state, batch, jax.random.key(1))
    history.append({k: float(v) for k, v in metrics.items()})
  assert int(state.step) == 30
  for name in ("encoder", "decoder", "discriminator"):  # each one's optimizer stepped it
    moved = jax.tree.map(
      lambda a, b: float(np.abs(np.asarray(a) - b).max()), state.params[name], start[name]
    )
    assert max(jax.tree.leaves(moved)) > 0, name
  # A discriminator whose optimizer never steps stays at chance (loss 2 ln 2 = 1.386); this
  # one learns to tell codes from prior samples.
  assert history[-1]["d_loss"] < 1.3 and history[-1]["d_accuracy"] > 0.6, history[-1]


def test_denoising_noise_is_new_every_step():
  """Two consecutive steps on the same batch at learning rate 0 (the weights stay as they
  are): their losses differ only if the noise does; the same step repeated gives the same."""
  config = configs.load_config("experiments/denoise.py:tiny", ["optim.learning_rate=0.0"])
  task = autoencoding.build(config, {"train": types.SimpleNamespace(image_shape=(28, 28, 1))}, 10)
  batch = {"image": (np.asarray(IMAGES) * 255).astype(np.uint8)}
  state = jax.jit(task.init)(jax.random.key(0), batch)
  step = jax.jit(task.train_step)
  first, metrics = step(state, batch, jax.random.key(1))
  _, again = step(state, batch, jax.random.key(1))
  second, next_metrics = step(first, batch, jax.random.key(1))
  assert int(first.step) == 1 and int(second.step) == 2
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(second.params)):
    np.testing.assert_array_equal(a, b)
  assert float(again["loss"]) == float(metrics["loss"])  # a step's noise is a function of it
  assert float(next_metrics["loss"]) != float(metrics["loss"]), "the same noise twice"
  assert abs(float(next_metrics["psnr"]) - float(metrics["psnr"])) > 1e-4


def test_superres_scale_that_does_not_divide_the_images_is_a_config_error():
  config = configs.load_config("experiments/superres.py:tiny", ["scale=8"])
  shape = {"train": types.SimpleNamespace(image_shape=(28, 28, 1))}
  with pytest.raises(ConfigError, match=r"--config.scale=8: does not divide the image size 28x28"):
    autoencoding.build(config, shape, 10)
  config = configs.load_config("experiments/superres.py:tiny", ["scale=4"])
  autoencoding.build(config, shape, 10)  # 4 divides 28


def test_conv_vae_for_image_sides_it_cannot_halve_twice_is_a_config_error():
  model = create_model("conv_vae", latent_dim=2, output_shape=(30, 30, 1))
  images = jnp.zeros((1, 30, 30, 1))
  with pytest.raises(ConfigError, match="needs image sides divisible by 4, got 30x30.*32x32"):
    jax.eval_shape(lambda: _init(model, images))


def _run(spec, tmp_path, overrides=()):
  results = loop.run(configs.load_config(spec, list(overrides)), str(tmp_path))
  assert json.load(open(tmp_path / "results.json")) == pytest.approx(results)
  return results


@pytest.mark.slow
def test_superres_tiny_run_beats_bicubic(data_env, tmp_path):
  # The net starts exactly at bicubic (test_superres_net_starts_at_bicubic), so a test PSNR
  # above bicubic's on the held-out test images is what training added (+0.7 dB after these
  # 30 steps; a net that does not learn stays at +0.0).
  overrides = ["num_steps=30", "eval_every=15", "optim.learning_rate=0.01"]
  results = _run("experiments/superres.py:tiny", tmp_path, overrides)
  assert {"test_psnr", "baseline_psnr", "psnr_gain_db"} <= set(results)
  assert results["psnr_gain_db"] == pytest.approx(results["test_psnr"] - results["baseline_psnr"])
  assert results["psnr_gain_db"] > 0.3, results
  assert os.path.getsize(tmp_path / "reconstructions.png") > 0


@pytest.mark.slow
def test_vae_tiny_run(data_env, tmp_path):
  results = _run("experiments/vae.py:tiny", tmp_path)
  for key in ("test_neg_elbo", "test_recon", "test_kl", "test_iwae_nll"):
    assert np.isfinite(results[key]), key
  assert results["test_neg_elbo"] == pytest.approx(
    results["test_recon"] + results["test_kl"], rel=1e-5
  )
  assert results["test_iwae_nll"] <= results["test_iwae_neg_elbo_same_samples"]
  assert results["test_iwae_samples"] >= 100
  for name in ("reconstructions", "samples", "interpolation", "latent_scatter", "latent_grid"):
    assert os.path.getsize(tmp_path / f"{name}.png") > 0, name


@pytest.mark.slow
def test_denoise_and_autoencoder_tiny_runs(data_env, tmp_path):
  results = _run(
    "experiments/denoise.py:tiny",
    tmp_path / "denoise",
    ["noise.kind=salt_pepper", "noise.level=0.2"],
  )
  assert {"test_psnr", "baseline_psnr"} <= set(results)
  results = _run("experiments/autoencoder.py:tiny", tmp_path / "ae")
  assert np.isfinite(results["test_psnr"])
  assert os.path.getsize(tmp_path / "ae" / "latent_scatter.png") > 0


@pytest.mark.slow
def test_aae_tiny_run(data_env, tmp_path):
  results = _run("experiments/aae.py:tiny", tmp_path)
  assert {"test_recon_bce", "test_d_accuracy", "test_code_std"} <= set(results)
  assert os.path.getsize(tmp_path / "latent_scatter.png") > 0
