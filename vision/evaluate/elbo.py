"""Likelihood bounds of a VAE: the negative ELBO and the importance-weighted bound (IWAE).

For images x with a Gaussian posterior q(z|x) = N(mean, exp(logvar)), a
standard-normal prior and a Bernoulli decoder:

* negative ELBO = E_q[-log p(x|z)] + KL(q(z|x) || p(z)), returned split into the
  reconstruction term (one reparameterized sample per image unless told
  otherwise) and the analytic KL, in nats per image;
* IWAE bound (Burda et al. 2016) with K samples:
  -log p(x) <= -log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), tighter than the
  negative ELBO and approaching -log p(x) as K grows.

The K samples are drawn in chunks inside ``lax.map`` so that only
``chunk_size * batch`` images are decoded at once: memory stays flat in K.
``encode(x) -> (mean, logvar)`` and ``decode(z) -> logits`` are closures over
the parameters; wrap the functions here in ``jax.jit``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vision import losses

Encode = Callable[[jax.Array], tuple[jax.Array, jax.Array]]
Decode = Callable[[jax.Array], jax.Array]


def negative_elbo(
  encode: Encode, decode: Decode, images: jax.Array, rng: jax.Array, num_samples: int = 1
) -> dict[str, jax.Array]:
  """Per-image ``{'neg_elbo', 'recon', 'kl'}`` [B] in nats (Bernoulli likelihood, analytic KL)."""
  mean, logvar = encode(images)
  kl = losses.kl_to_standard_normal(mean, logvar)

  def recon_nll(key):
    z = losses.reparameterize(key, mean, logvar)
    return -losses.bernoulli_log_likelihood(decode(z), images)

  recon = jnp.mean(jax.lax.map(recon_nll, jax.random.split(rng, num_samples)), axis=0)
  return {"neg_elbo": recon + kl, "recon": recon, "kl": kl}


def importance_log_weights(
  encode: Encode,
  decode: Decode,
  images: jax.Array,
  rng: jax.Array,
  num_samples: int,
  chunk_size: int = 10,
) -> jax.Array:
  """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for z_k ~ q(z|x): [K, B]."""
  if num_samples % chunk_size:
    raise ValueError(f"num_samples {num_samples} is not a multiple of chunk_size {chunk_size}.")
  mean, logvar = encode(images)
  batch, latent = mean.shape

  def chunk(key):
    eps = jax.random.normal(key, (chunk_size, batch, latent))
    z = mean + jnp.exp(0.5 * logvar) * eps  # [c, B, D]
    logits = decode(z.reshape(chunk_size * batch, latent))  # [c * B, H, W, C]
    targets = jnp.broadcast_to(images, (chunk_size, *images.shape))
    log_px = losses.bernoulli_log_likelihood(logits, targets.reshape(logits.shape))
    log_pz = losses.standard_normal_log_density(z)  # [c, B]
    log_qz = losses.gaussian_log_density(z, mean, logvar)  # [c, B]
    return log_px.reshape(chunk_size, batch) + log_pz - log_qz

  keys = jax.random.split(rng, num_samples // chunk_size)
  return jax.lax.map(chunk, keys).reshape(num_samples, batch)  # [K, B]


def iwae_nll(log_weights: jax.Array) -> jax.Array:
  """The IWAE upper bound on -log p(x) from log weights [K, B]: [B] nats."""
  k = log_weights.shape[0]
  return -(jax.nn.logsumexp(log_weights, axis=0) - math.log(k))


def fixed_binarization(images_uint8, seed: int = 0):
  """A fixed-seed Bernoulli sample of grey levels (numpy, host-side), independent of batching.

  The test protocol: every evaluation of every model sees the same binary test set.
  """
  probs = np.asarray(images_uint8, np.float32) / 255.0
  return (np.random.default_rng(seed).random(probs.shape, dtype=np.float32) < probs).astype(
    np.float32
  )
