"""Losses: reparameterization statistics, analytic KL vs Monte Carlo, likelihoods, weights."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vision import losses

MEAN = jnp.array([0.5, -1.0, 2.0, 0.0])
LOGVAR = jnp.array([0.0, -2.0, 1.0, 0.7])  # log-variance: std = exp(logvar / 2)


def test_reparameterize_has_the_right_mean_and_std():
  n = 200_000
  z = losses.reparameterize(
    jax.random.key(0), jnp.broadcast_to(MEAN, (n, 4)), jnp.broadcast_to(LOGVAR, (n, 4))
  )
  std = np.exp(0.5 * np.asarray(LOGVAR))
  # Within 5 standard errors of the sample mean and of the sample std.
  np.testing.assert_array_less(np.abs(np.mean(z, 0) - MEAN), 5 * std / math.sqrt(n))
  np.testing.assert_array_less(np.abs(np.std(z, 0) - std), 5 * std / math.sqrt(2 * n))


def test_reparameterize_is_differentiable_in_mean_and_logvar():
  f = lambda m, lv: jnp.sum(losses.reparameterize(jax.random.key(1), m, lv))  # noqa: E731
  dm, dlv = jax.grad(f, argnums=(0, 1))(MEAN, LOGVAR)
  np.testing.assert_allclose(dm, np.ones(4))
  eps = jax.random.normal(jax.random.key(1), (4,))
  np.testing.assert_allclose(dlv, 0.5 * np.exp(0.5 * LOGVAR) * eps, rtol=1e-5)


def test_kl_matches_monte_carlo():
  n = 400_000
  z = losses.reparameterize(
    jax.random.key(2), jnp.broadcast_to(MEAN, (n, 4)), jnp.broadcast_to(LOGVAR, (n, 4))
  )
  # KL(q || p) = E_q[log q(z) - log p(z)], estimated by the sample mean.
  log_ratio = losses.gaussian_log_density(z, MEAN, LOGVAR) - losses.standard_normal_log_density(z)
  estimate, stderr = float(jnp.mean(log_ratio)), float(jnp.std(log_ratio)) / math.sqrt(n)
  analytic = float(losses.kl_to_standard_normal(MEAN, LOGVAR))
  assert abs(estimate - analytic) < 4 * stderr, (estimate, analytic, stderr)
  # And the closed form itself, per dimension.
  mean, logvar = np.asarray(MEAN), np.asarray(LOGVAR)
  expected = float(0.5 * np.sum(np.exp(logvar) + mean**2 - 1 - logvar))
  assert analytic == pytest.approx(expected, rel=1e-6)


def test_kl_is_zero_only_at_the_prior_and_batched():
  assert float(losses.kl_to_standard_normal(jnp.zeros(3), jnp.zeros(3))) == 0.0
  batch = losses.kl_to_standard_normal(jnp.stack([MEAN, 0 * MEAN]), jnp.stack([LOGVAR, 0 * LOGVAR]))
  assert batch.shape == (2,) and float(batch[0]) > 0 and float(batch[1]) == 0


def test_gaussian_log_densities_match_scipy():
  z = jnp.array([[0.3, -1.2, 2.5, 0.1]])
  expected = stats.norm.logpdf(np.asarray(z), np.asarray(MEAN), np.exp(0.5 * np.asarray(LOGVAR)))
  np.testing.assert_allclose(
    losses.gaussian_log_density(z, MEAN, LOGVAR), expected.sum(-1), rtol=1e-5
  )
  np.testing.assert_allclose(
    losses.standard_normal_log_density(z), stats.norm.logpdf(np.asarray(z)).sum(-1), rtol=1e-5
  )
  x = jnp.full((2, 3, 3, 1), 0.25)
  mean = jnp.full((2, 3, 3, 1), 0.5)
  ll = losses.gaussian_log_likelihood(mean, x, jnp.log(0.1))
  np.testing.assert_allclose(ll, 9 * stats.norm.logpdf(0.25, 0.5, 0.1) * np.ones(2), rtol=1e-5)


def test_bernoulli_likelihood_is_stable_bce_on_logits():
  logits = jnp.array([[-3.0, 0.0, 2.0, 60.0, -60.0]])
  targets = jnp.array([[0.0, 1.0, 0.3, 1.0, 0.0]])
  p = jax.nn.sigmoid(logits.astype(jnp.float64) if jax.config.x64_enabled else logits)
  naive = -(targets * jnp.log(jnp.clip(p, 1e-30)) + (1 - targets) * jnp.log(jnp.clip(1 - p, 1e-30)))
  bce = losses.binary_cross_entropy_with_logits(logits, targets)
  np.testing.assert_allclose(bce[0, :3], naive[0, :3], rtol=1e-5)
  assert float(bce[0, 3]) < 1e-20 and float(bce[0, 4]) < 1e-20  # no log(0) at saturation
  ll = losses.bernoulli_log_likelihood(logits.reshape(1, 5, 1, 1), targets.reshape(1, 5, 1, 1))
  np.testing.assert_allclose(ll, -jnp.sum(bce, -1), rtol=1e-6)
  grads = jax.grad(lambda l: jnp.sum(losses.binary_cross_entropy_with_logits(l, targets)))(logits)
  np.testing.assert_allclose(grads, jax.nn.sigmoid(logits) - targets, atol=1e-6)


def test_kl_weight_beta_and_warmup():
  assert float(losses.kl_weight(0, beta=4.0)) == 4.0
  assert [float(losses.kl_weight(s, 2.0, 10)) for s in (0, 5, 10, 50)] == [0.0, 1.0, 2.0, 2.0]


def test_adversarial_losses_at_chance():
  zeros = jnp.zeros(8)
  assert float(losses.discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2))
  assert float(losses.generator_loss(zeros)) == pytest.approx(math.log(2))
  assert float(losses.discriminator_loss(jnp.full(8, 20.0), jnp.full(8, -20.0))) < 1e-6
