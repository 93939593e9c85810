"""Gradients from concurrent batch shards equal the whole batch's (vision/train/shards.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision import benchmark
from vision.train import shards


def _per_example(params, batch):
  hidden = jnp.tanh(batch["x"] @ params["w1"])  # [b, 8]
  pred = hidden @ params["w2"]  # [b]
  losses = (pred - batch["y"]) ** 2
  return losses, {"pred": pred, "hidden": hidden}


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


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_sharded_mean_and_gradient_equal_the_whole_batch(k):
  params, batch = _problem()

  def mean_loss(p):
    losses, aux = _per_example(p, batch)
    return jnp.mean(losses), aux

  (want, want_aux), want_grad = jax.value_and_grad(mean_loss, has_aux=True)(params)
  fn = jax.jit(lambda p, b: shards.mean_value_and_grad(_per_example, p, b, k))
  (got, got_aux), got_grad = fn(params, batch)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  for name in want_aux:
    np.testing.assert_allclose(got_aux[name], want_aux[name], rtol=1e-6)
  for name in want_grad:
    np.testing.assert_allclose(got_grad[name], want_grad[name], rtol=1e-5, atol=1e-7)


def test_resolve_shards():
  expected = 2 if jax.default_backend() == "cpu" else 1
  assert shards.resolve_shards(0, 128) == expected
  assert shards.resolve_shards(3, 128) == 1  # does not divide: the whole batch at once
  assert shards.resolve_shards(4, 128) == 4
  with pytest.raises(ValueError, match=">= 0"):
    shards.resolve_shards(-1, 128)
  with pytest.raises(ValueError, match="do not divide"):
    shards.mean_value_and_grad(_per_example, *_problem(10), 4)


def test_vae_step_is_the_same_for_any_shard_count():
  """The VAE task's step (noise drawn before sharding): same loss, metrics and update."""
  outs = []
  for k in (1, 2, 4):
    work = benchmark.build_vae(batch_size=8)
    work.step.__self__.config.vae.grad_shards = k
    state, metrics = jax.jit(work.step)(*work.args)
    outs.append((jax.device_get(state.params), jax.device_get(metrics)))
  (params1, metrics1), rest = outs[0], outs[1:]
  for params, metrics in rest:
    for name in ("loss", "recon", "kl", "grad_norm"):
      np.testing.assert_allclose(metrics[name], metrics1[name], rtol=2e-5)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)  # noqa: E731
    jax.tree.map(close, params, params1)
