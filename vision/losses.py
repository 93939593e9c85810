"""Losses and log-densities shared by the experiments.

Conventions, so that the pieces compose without surprises:

* ``logvar`` always means the **log-variance** ``log sigma^2`` of a diagonal
  Gaussian: ``reparameterize`` samples with ``exp(0.5 * logvar)`` and
  ``kl_to_standard_normal`` penalizes the same quantity. (A common mistake is to
  sample with ``exp(z_log_sigma)`` but penalize ``z_log_sigma`` as a
  log-variance: two different distributions in one loss.)
* Log-likelihoods and KL terms are in nats, **summed** over every axis but the
  batch axis and returned per example ``[B]``; the caller takes the mean.
* Image likelihoods take decoder **logits**; the sigmoid lives in the loss
  (numerically stable BCE-with-logits), never in the model.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def _sum_per_example(x: jax.Array) -> jax.Array:
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)  # [B]


# -- Gaussian latents ---------------------------------------------------------------------------
def reparameterize(
  rng: jax.Array | None, mean: jax.Array, logvar: jax.Array, eps: jax.Array | None = None
) -> jax.Array:
  """A differentiable sample of N(mean, exp(logvar)): ``mean + exp(0.5 * logvar) * eps``.

  ``eps`` ~ N(0, I) is drawn from ``rng`` unless given (e.g. drawn once for a
  whole batch that is then split, :mod:`vision.ops.shards`).
  """
  if eps is None:
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
  return mean + jnp.exp(0.5 * logvar) * eps


def kl_to_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """Analytic KL( N(mean, exp(logvar)) || N(0, I) ) in nats, summed over the last axis.

  ``0.5 * sum(exp(logvar) + mean^2 - 1 - logvar)``.
  """
  return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar, axis=-1)


def gaussian_log_density(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """log N(z; mean, exp(logvar)) of a diagonal Gaussian, summed over the last axis."""
  return -0.5 * jnp.sum(LOG_2PI + logvar + jnp.square(z - mean) * jnp.exp(-logvar), axis=-1)


def standard_normal_log_density(z: jax.Array) -> jax.Array:
  """log N(z; 0, I), summed over the last axis."""
  return -0.5 * jnp.sum(LOG_2PI + jnp.square(z), axis=-1)


# -- image likelihoods ---------------------------------------------------------------------------
def binary_cross_entropy_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Elementwise ``-[t log sigmoid(l) + (1 - t) log(1 - sigmoid(l))]``, stable for any logit.

  ``targets`` may be soft (grey levels in [0, 1]); for binary targets this is
  the Bernoulli negative log-likelihood.
  """
  logits = logits.astype(jnp.float32)
  # log_sigmoid is stable at both ends and, unlike max(l, 0) - l t + log1p(exp(-|l|)),
  # has the right gradient (sigmoid(l) - t) at l = 0.
  return -targets * jax.nn.log_sigmoid(logits) - (1.0 - targets) * jax.nn.log_sigmoid(-logits)


def bernoulli_log_likelihood(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """log p(x | logits) of independent Bernoulli pixels, per example [B] (nats)."""
  return -_sum_per_example(binary_cross_entropy_with_logits(logits, targets))


def gaussian_log_likelihood(
  mean: jax.Array, targets: jax.Array, log_scale: jax.Array | float
) -> jax.Array:
  """log N(x; mean, exp(log_scale)^2) of independent pixels, per example [B] (nats).

  ``log_scale`` is a log standard deviation (scalar, per pixel, or learned).
  A density, so for continuous pixels it is not comparable with Bernoulli nats.
  """
  log_scale = jnp.broadcast_to(jnp.asarray(log_scale, jnp.float32), targets.shape)
  z = (targets - mean) * jnp.exp(-log_scale)
  return _sum_per_example(-0.5 * (LOG_2PI + jnp.square(z)) - log_scale)


def reconstruction_log_likelihood(
  kind: str, decoded: jax.Array, targets: jax.Array, log_scale: float = 0.0
) -> jax.Array:
  """``'bernoulli'``: ``decoded`` are logits; ``'gaussian'``: ``decoded`` are logits of the mean."""
  if kind == "bernoulli":
    return bernoulli_log_likelihood(decoded, targets)
  if kind == "gaussian":
    return gaussian_log_likelihood(jax.nn.sigmoid(decoded), targets, log_scale)
  raise ValueError(f"unknown likelihood {kind!r}; choose 'bernoulli' or 'gaussian'.")


# -- KL weighting -----------------------------------------------------------------------------
def kl_weight(step: jax.Array, beta: float = 1.0, warmup_steps: int = 0) -> jax.Array:
  """β times a linear KL warm-up from 0 to 1 over ``warmup_steps`` (none if 0).

  β = 1 with no warm-up is the ELBO; β > 1 is the β-VAE; warm-up (Bowman et
  al. 2016, Sønderby et al. 2016) lets the decoder learn before the KL term
  pulls the posterior to the prior.
  """
  if warmup_steps <= 0:
    return jnp.asarray(beta, jnp.float32)
  ramp = jnp.clip(jnp.asarray(step, jnp.float32) / float(warmup_steps), 0.0, 1.0)
  return beta * ramp


# -- adversarial (logistic) losses --------------------------------------------------------------
def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Mean BCE of a discriminator that should say 1 on real and 0 on fake samples."""
  return jnp.mean(binary_cross_entropy_with_logits(real_logits, 1.0)) + jnp.mean(
    binary_cross_entropy_with_logits(fake_logits, 0.0)
  )


def generator_loss(fake_logits: jax.Array) -> jax.Array:
  """Non-saturating generator loss ``-log D(fake)`` (mean): fool the discriminator."""
  return jnp.mean(binary_cross_entropy_with_logits(fake_logits, 1.0))
