"""A VAE's likelihood bounds on a whole image set, batch by batch (per-image arrays out).

``model`` has ``encode`` (images -> (mean, logvar)) and ``decode`` (z -> logits)
methods; ``variables`` are passed to the jitted functions as arguments, not
baked into them. Batch ``i`` draws its samples from ``fold_in(key(seed), i)``,
so the numbers depend on the batch size and the seed, never on anything else.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vision.evaluate import elbo
from vision.evaluate.batched import batched_apply


def _encode(model, variables, x):
  return model.apply(variables, x, method="encode")


def _decode(model, variables, z):
  return model.apply(variables, z, method="decode")


def _batch_keys(seed: int, batch_size: int):
  key = jax.random.key(seed)
  return lambda batch: jax.random.fold_in(key, int(batch["index"][0]) // batch_size)


def negative_elbo(model, variables, images: np.ndarray, batch_size: int, seed: int):
  """Per image: 'neg_elbo', 'recon', 'kl' (nats, one sample) and the posterior 'mean'."""

  @jax.jit
  def elbo_batch(v, batch, rng):
    out = elbo.negative_elbo(
      lambda x: _encode(model, v, x), lambda z: _decode(model, v, z), batch, rng
    )
    out["mean"] = _encode(model, v, batch)[0]
    return out

  key_of = _batch_keys(seed, batch_size)
  return batched_apply(
    lambda b: elbo_batch(variables, b["x"], key_of(b)),
    {"x": images, "index": np.arange(len(images))},
    batch_size,
  )


def iwae(
  model, variables, images: np.ndarray, batch_size: int, seed: int, num_samples: int, chunk: int
):
  """Per image: the IWAE bound 'iwae' with ``num_samples`` samples (drawn ``chunk`` at a time)
  and 'elbo_k', the negative ELBO estimated from the same samples."""

  @jax.jit
  def bounds(v, batch, rng):
    log_w = elbo.importance_log_weights(
      lambda x: _encode(model, v, x), lambda z: _decode(model, v, z), batch, rng, num_samples, chunk
    )
    return {"iwae": elbo.iwae_nll(log_w), "elbo_k": -jnp.mean(log_w, axis=0)}

  key_of = _batch_keys(seed, batch_size)
  return batched_apply(
    lambda b: bounds(variables, b["x"], key_of(b)),
    {"x": images, "index": np.arange(len(images))},
    batch_size,
  )
