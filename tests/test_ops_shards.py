"""vision.ops.shards: gradients from concurrent batch shards equal the whole batch's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision import losses
from vision.models.registry import create_model
from vision.ops import kernels, shards

# These tests choose the kernel forms themselves.
pytestmark = pytest.mark.usefixtures("pinned_kernels")


def _per_example(params, batch):
  hidden = jnp.tanh(batch["x"] @ params["w1"])  # [b, 8]
  pred = hidden @ params["w2"]  # [b]
  errors = (pred - batch["y"]) ** 2
  return errors, {"pred": pred, "hidden": hidden}


def _problem(n=12):
  rng = np.random.default_rng(0)
  params = {
    "w1": jnp.asarray(rng.standard_normal((5, 8)), jnp.float32),
    "w2": jnp.asarray(rng.standard_normal(8), jnp.float32),
  }
  batch = {
    "x": jnp.asarray(rng.standard_normal((n, 5)), jnp.float32),
    "y": jnp.asarray(rng.standard_normal(n), jnp.float32),
  }
  return params, batch


@pytest.mark.parametrize("k", [1, 2, 3, 4, 0])
def test_sharded_mean_and_gradient_equal_the_whole_batch(k):
  params, batch = _problem()

  def mean_loss(p):
    errors, aux = _per_example(p, batch)
    return jnp.mean(errors), aux

  (want, want_aux), want_grad = jax.value_and_grad(mean_loss, has_aux=True)(params)
  fn = jax.jit(lambda p, b: shards.mean_value_and_grad(_per_example, p, b, k))
  (got, got_aux), got_grad = fn(params, batch)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  for name in want_aux:
    np.testing.assert_allclose(got_aux[name], want_aux[name], rtol=1e-6)
  for name in want_grad:
    np.testing.assert_allclose(got_grad[name], want_grad[name], rtol=1e-5, atol=1e-7)


def test_resolve_shards():
  assert shards.resolve_shards(0, 128, kernels="cpu") == 2
  assert shards.resolve_shards(0, 128, kernels="portable") == 1
  assert shards.resolve_shards(0, 127, kernels="cpu") == 1  # 2 does not divide 127
  with kernels.use("portable"):
    assert shards.resolve_shards(0, 128) == 1  # the process-wide choice
  with kernels.use("cpu"):
    assert shards.resolve_shards(0, 128) == 2
  assert shards.resolve_shards(3, 128) == 1  # does not divide: the whole batch at once
  assert shards.resolve_shards(4, 128) == 4
  with pytest.raises(ValueError, match=">= 0"):
    shards.resolve_shards(-1, 128)
  with pytest.raises(ValueError, match="do not divide"):
    shards.mean_value_and_grad(_per_example, *_problem(10), 4)
  with pytest.raises(ValueError, match=">= 0"):
    shards.mean_value_and_grad(_per_example, *_problem(10), -2)


@pytest.mark.slow
def test_vae_loss_and_gradient_are_the_same_for_any_shard_count():
  """The VAE's per-image loss (noise drawn for the whole batch before sharding): same loss,
  terms and gradient for 1, 2 and 4 shards."""
  model = create_model("conv_vae", latent_dim=2)
  rng = np.random.default_rng(1)
  images = jnp.asarray(rng.random((8, 28, 28, 1)) > 0.5, jnp.float32)
  noise = jnp.asarray(rng.standard_normal((8, 2)), jnp.float32)
  params = model.init(jax.random.key(0), images[:1], noise=noise[:1])["params"]

  def per_example(params, part):
    logits, features = model.apply({"params": params}, part["images"], noise=part["noise"])
    recon = -losses.bernoulli_log_likelihood(logits, part["images"])
    kl = losses.kl_to_standard_normal(features["mean"], features["logvar"])
    return recon + 0.5 * kl, (recon, kl)

  outs = []
  for k in (1, 2, 4):
    step = jax.jit(lambda p, b, k=k: shards.mean_value_and_grad(per_example, p, b, k))
    (loss, (recon, kl)), grads = step(params, {"images": images, "noise": noise})
    outs.append((loss, recon, kl, grads))
  loss1, recon1, kl1, grads1 = outs[0]
  for loss, recon, kl, grads in outs[1:]:
    np.testing.assert_allclose(loss, loss1, rtol=2e-5)
    np.testing.assert_allclose(recon, recon1, rtol=2e-5)
    np.testing.assert_allclose(kl, kl1, rtol=2e-5)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # noqa: E731
    jax.tree.map(close, grads, grads1)
