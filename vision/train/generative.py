"""Latent-variable autoencoders: the VAE and the adversarial autoencoder (AAE).

VAE (``task='vae'``). Data protocol: pixels are Bernoulli variables. Training
draws a fresh binarization of the grey levels every step (dynamic
binarization, ``vae.binarize='dynamic'``); the test split is binarized once on
the host with a fixed seed (:func:`vision.evaluate.elbo.fixed_binarization`),
so every model is scored on the same binary images. The loss per image is
``-log p(x|z) + w * KL(q(z|x) || N(0, I))`` with one reparameterized sample and
the analytic KL, ``w = beta * min(1, step / kl_warmup_steps)``; the reported
negative ELBO always uses w = 1. The final evaluation gives the negative ELBO
(reconstruction + KL) in nats per image and the IWAE bound with K samples.

AAE (``task='aae'``). One jitted step performs the three updates of Makhzani
et al. (2015), each with its own optax state: (1) encoder + decoder on the
reconstruction loss; (2) the latent discriminator on prior samples N(0, I)
(real) vs codes of the batch (fake); (3) the encoder as a generator, to make
its codes look like prior samples. The lesson's notebook stepped the decoder's
optimizer in (2), so its discriminator never learned; here the test checks that
it does.
"""

from __future__ import annotations

import os
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vision import losses, viz
from vision.data import augment
from vision.evaluate import elbo
from vision.evaluate.image_quality import psnr
from vision.models import dropout
from vision.models.registry import create_model
from vision.train.autoencoding import batched, content_key, model_kwargs, test_arrays
from vision.train.optim import make_optimizer
from vision.train.shards import mean_value_and_grad, resolve_shards
from vision.train.state import TrainState
from vision.train.task import Task


# -- pictures shared by both tasks ---------------------------------------------------------------
def latent_pictures(
  workdir,
  writer,
  step,
  *,
  decode,
  codes,
  labels,
  class_names,
  test_images,
  prior_samples=None,
  title="",
  grid_size=20,
):
  """Samples from the prior, interpolations, and for a 2-D latent the scatter and the grid.

  ``decode(z) -> probabilities [N, H, W, C]`` (numpy in, numpy out); ``codes``
  are the test encodings (posterior means) in test order.
  """
  paths = {}
  rng = np.random.default_rng(0)
  latent = codes.shape[1]
  samples = decode(rng.standard_normal((64, latent)).astype(np.float32))
  paths["samples"] = viz.save_grid(os.path.join(workdir, "samples.png"), samples, ncols=16)
  # Interpolation between pairs of test images, through the latent space.
  pairs = rng.choice(len(codes), size=(6, 2), replace=False)
  alphas = np.linspace(0.0, 1.0, 10, dtype=np.float32)[None, :, None]
  path_codes = (1 - alphas) * codes[pairs[:, 0]][:, None] + alphas * codes[pairs[:, 1]][:, None]
  interp = decode(path_codes.reshape(-1, latent))  # [6 * 10, H, W, C]
  interp = interp.reshape(6, 10, *interp.shape[1:])
  rows = np.concatenate(
    [test_images[pairs[:, 0]][:, None], interp, test_images[pairs[:, 1]][:, None]], axis=1
  )  # [6, 12, H, W, C]
  paths["interpolation"] = viz.save_grid(
    os.path.join(workdir, "interpolation.png"), rows.reshape(-1, *rows.shape[2:]), ncols=12
  )
  images = {
    "test/samples": viz.image_grid(samples, ncols=16),
    "test/interpolation": viz.image_grid(rows.reshape(-1, *rows.shape[2:]), ncols=12),
  }
  if latent >= 2 and (latent == 2 or prior_samples is not None):
    # For a higher-dimensional AAE the first two coordinates, against the prior's marginal.
    paths["latent_scatter"] = viz.plot_latent_scatter(
      os.path.join(workdir, "latent_scatter.png"),
      codes,
      labels,
      class_names,
      prior=prior_samples,
      title=title,
    )
  if latent == 2:
    values = viz.gaussian_quantile_grid(grid_size).astype(np.float32)
    # Row-major, top row = largest z[1], so the picture reads like the scatter plot.
    zx, zy = np.meshgrid(values, values[::-1])
    grid = decode(np.stack([zx.ravel(), zy.ravel()], -1))
    paths["latent_grid"] = viz.plot_latent_grid(
      os.path.join(workdir, "latent_grid.png"),
      grid,
      values,
      title=f"{title}: decoded over N(0, I) quantiles",
    )
    images["test/latent_grid"] = viz.image_grid(grid, ncols=grid_size, pad=0)
  writer.write_images(step, images)
  return paths


def _decode_fn(model, variables, batch_size):
  apply = jax.jit(lambda v, z: jax.nn.sigmoid(model.apply(v, z, method="decode")))
  return lambda z: batched(
    lambda b: {"x": apply(variables, b["z"])}, {"z": np.asarray(z)}, batch_size
  )["x"]


# -- VAE -----------------------------------------------------------------------------------------
class VAETask(Task):
  """Variational autoencoder with a Bernoulli decoder (see the module docstring)."""

  def __init__(self, config, splits):
    super().__init__(config, splits)
    self.image_shape = tuple(splits["train"].image_shape)
    self.model = create_model(
      config.model.name, output_shape=self.image_shape, **model_kwargs(config.model)
    )

  def init(self, rng, batch):
    images = augment.to_float(batch["image"][:1])
    variables = self.model.init({"params": rng, "latent": rng}, images, train=False)
    return TrainState.create(
      params=variables["params"], tx=make_optimizer(self.config.optim, self.num_steps)
    )

  def binarize(self, rng, images_uint8):
    probs = augment.to_float(images_uint8)
    if self.config.vae.binarize == "dynamic":
      # == jax.random.bernoulli(rng, probs), without its rolled Threefry loop on CPU
      return dropout.bernoulli(rng, probs).astype(jnp.float32)
    if self.config.vae.binarize == "none":
      return probs
    raise ValueError(f"unknown vae.binarize {self.config.vae.binarize!r}; 'dynamic' or 'none'.")

  def terms(self, params, images, rng=None, noise=None):
    """Per-image reconstruction NLL and analytic KL [B] from one reparameterized sample.

    The sample uses ``noise`` [B, latent] ~ N(0, I) if given, else draws from ``rng``.
    """
    rngs = {} if noise is not None else {"latent": rng}
    logits, features = self.model.apply(
      {"params": params}, images, train=True, noise=noise, rngs=rngs
    )
    cfg = self.config.vae
    recon = -losses.reconstruction_log_likelihood(
      cfg.likelihood, logits, images, cfg.get("gaussian_log_scale", 0.0)
    )
    kl = losses.kl_to_standard_normal(features["mean"], features["logvar"])
    return recon, kl

  def train_step(self, state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    data_rng, latent_rng = jax.random.split(rng)
    images = self.binarize(data_rng, batch["image"])
    weight = losses.kl_weight(state.step, self.config.vae.beta, self.config.vae.kl_warmup_steps)

    # One draw for the whole batch, so the step computes the same numbers for
    # any number of gradient shards (vision/train/shards.py).
    noise = jax.random.normal(latent_rng, (images.shape[0], self.config.model.latent_dim))

    def per_example(params, part):
      recon, kl = self.terms(params, part["images"], noise=part["noise"])
      return recon + weight * kl, (recon, kl)

    shards = resolve_shards(self.config.vae.get("grad_shards", 0), images.shape[0])
    (loss, (recon, kl)), grads = mean_value_and_grad(
      per_example, state.params, {"images": images, "noise": noise}, shards
    )
    state = state.apply_gradients(grads)
    return state, {
      "loss": loss,
      "neg_elbo": jnp.mean(recon + kl),
      "recon": jnp.mean(recon),
      "kl": jnp.mean(kl),
      "kl_weight": weight,
      "grad_norm": optax.global_norm(grads),
    }

  def eval_step(self, state, batch):
    data_rng, latent_rng = jax.random.split(content_key(self.config.seed + 1, batch["image"]))
    images = self.binarize(data_rng, batch["image"])
    recon, kl = self.terms(state.params, images, latent_rng)
    mask = batch["mask"]
    return {
      "neg_elbo": jnp.sum((recon + kl) * mask),
      "recon": jnp.sum(recon * mask),
      "kl": jnp.sum(kl * mask),
      "count": jnp.sum(mask),
    }

  def finalize(self, state, ctx):
    results = {}
    if "val" in ctx.splits:
      results.update({f"val_{k}": v for k, v in ctx.evaluate(state, ctx.splits["val"]).items()})
    split = ctx.splits.get("test")
    if split is None:
      return results
    cfg, batch_size = self.config.vae, self.config.batch_size
    data = test_arrays(split)
    if cfg.binarize == "dynamic":
      images = elbo.fixed_binarization(data["image"], seed=cfg.test_binarization_seed)
    else:
      images = np.asarray(data["image"], np.float32) / 255.0
    variables = {"params": state.params}
    encode = lambda v, x: self.model.apply(v, x, method="encode")  # noqa: E731
    decode = lambda v, z: self.model.apply(v, z, method="decode")  # noqa: E731

    @jax.jit
    def elbo_batch(v, batch, rng):
      out = elbo.negative_elbo(lambda x: encode(v, x), lambda z: decode(v, z), batch, rng)
      out["mean"] = encode(v, batch)[0]
      return out

    key = jax.random.key(self.config.seed + 3)
    counter = iter(range(1 << 30))
    out = batched(
      lambda b: elbo_batch(variables, b["x"], jax.random.fold_in(key, next(counter))),
      {"x": images},
      batch_size,
    )
    results.update(
      test_neg_elbo=float(out["neg_elbo"].mean()),
      test_recon=float(out["recon"].mean()),
      test_kl=float(out["kl"].mean()),
      test_examples=float(len(images)),
    )
    if cfg.likelihood == "bernoulli":
      results.update(self.iwae(variables, images, encode, decode))
    # Active units (Burda et al.): latent dimensions whose posterior mean varies with x.
    results["test_active_units"] = float(np.sum(np.var(out["mean"], axis=0) > 1e-2))

    decode_probs = _decode_fn(self.model, variables, batch_size)
    recon = decode_probs(out["mean"][:12])
    viz.labelled_rows(
      os.path.join(ctx.workdir, "reconstructions.png"),
      [data["image"][:12], images[:12], recon],
      ["test image", "binarized", "reconstruction (mean)"],
    )
    latent_pictures(
      ctx.workdir,
      ctx.writer,
      ctx.num_steps,
      decode=decode_probs,
      codes=out["mean"],
      labels=data["label"],
      class_names=split.class_names,
      test_images=images,
      title=f"{self.config.model.name}, latent {self.config.model.latent_dim}",
    )
    ctx.writer.write_scalars(
      ctx.num_steps, {f"test/{k[5:]}": v for k, v in results.items() if f"val_{k[5:]}" in results}
    )
    return results

  def iwae(self, variables, images, encode, decode) -> dict[str, float]:
    """The IWAE bound with ``vae.iwae_samples`` samples on the first ``vae.iwae_examples``."""
    cfg = self.config.vae
    n = min(len(images), cfg.iwae_examples) if cfg.iwae_examples else len(images)
    k, chunk = cfg.iwae_samples, cfg.iwae_chunk

    @jax.jit
    def bounds(v, batch, rng):
      log_w = elbo.importance_log_weights(
        lambda x: encode(v, x), lambda z: decode(v, z), batch, rng, k, chunk
      )
      return {"iwae": elbo.iwae_nll(log_w), "elbo_k": -jnp.mean(log_w, axis=0)}

    key = jax.random.key(self.config.seed + 4)
    counter = iter(range(1 << 30))
    # Smaller batches keep chunk * batch decoded images in memory at once.
    out = batched(
      lambda b: bounds(variables, b["x"], jax.random.fold_in(key, next(counter))),
      {"x": images[:n]},
      cfg.iwae_batch_size,
    )
    return {
      "test_iwae_nll": float(out["iwae"].mean()),
      "test_iwae_neg_elbo_same_samples": float(out["elbo_k"].mean()),
      "test_iwae_examples": float(n),
      "test_iwae_samples": float(k),
    }


# -- AAE -----------------------------------------------------------------------------------------
class AAEState(flax.struct.PyTreeNode):
  """Parameters of the three networks and one optimizer state per update of the AAE step.

  ``params`` = {'encoder', 'decoder', 'discriminator'}; ``ae_opt`` (encoder +
  decoder, reconstruction), ``disc_opt`` (discriminator), ``gen_opt``
  (encoder, regularization).
  """

  step: jax.Array
  params: Any
  ae_opt: Any
  disc_opt: Any
  gen_opt: Any
  ae_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)
  disc_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)
  gen_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)


def _with_lr(optim, learning_rate):
  optim = ml_collections.ConfigDict(optim.to_dict())
  optim.learning_rate = learning_rate
  return optim


def _update(tx, grads, opt_state, params):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


class AAETask(Task):
  """Adversarial autoencoder with a really trained latent discriminator."""

  def __init__(self, config, splits):
    super().__init__(config, splits)
    self.image_shape = tuple(splits["train"].image_shape)
    self.model = create_model(
      config.model.name, output_shape=self.image_shape, **model_kwargs(config.model)
    )

  def init(self, rng, batch):
    images = augment.to_float(batch["image"][:1])
    params = self.model.init(rng, images, train=False)["params"]
    cfg = self.config.aae
    ae_tx = make_optimizer(self.config.optim, self.num_steps)
    disc_tx = make_optimizer(_with_lr(self.config.optim, cfg.disc_learning_rate), self.num_steps)
    gen_tx = make_optimizer(_with_lr(self.config.optim, cfg.gen_learning_rate), self.num_steps)
    auto = {"encoder": params["encoder"], "decoder": params["decoder"]}
    return AAEState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      ae_opt=ae_tx.init(auto),
      disc_opt=disc_tx.init(params["discriminator"]),
      gen_opt=gen_tx.init(params["encoder"]),
      ae_tx=ae_tx,
      disc_tx=disc_tx,
      gen_tx=gen_tx,
    )

  def apply(self, params, method, *args):
    return self.model.apply({"params": params}, *args, method=method)

  def recon_loss(self, params, images):
    logits = self.apply(params, "decode", self.apply(params, "encode", images))
    return jnp.mean(losses.binary_cross_entropy_with_logits(logits, images))  # per pixel

  def train_step(self, state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    images = augment.to_float(batch["image"])
    params = state.params
    # (1) Reconstruction: encoder and decoder.
    auto = {"encoder": params["encoder"], "decoder": params["decoder"]}
    recon, grads = jax.value_and_grad(lambda a: self.recon_loss({**params, **a}, images))(auto)
    auto, ae_opt = _update(state.ae_tx, grads, state.ae_opt, auto)
    params = {**params, **auto}
    # (2) Discriminator: prior samples are real, codes of the batch are fake.
    codes = jax.lax.stop_gradient(self.apply(params, "encode", images))
    prior = jax.random.normal(rng, codes.shape)

    def disc_loss_fn(d):
      p = {**params, "discriminator": d}
      real, fake = self.apply(p, "discriminate", prior), self.apply(p, "discriminate", codes)
      return losses.discriminator_loss(real, fake), (real, fake)

    (d_loss, (real, fake)), grads = jax.value_and_grad(disc_loss_fn, has_aux=True)(
      params["discriminator"]
    )
    disc, disc_opt = _update(state.disc_tx, grads, state.disc_opt, params["discriminator"])
    params = {**params, "discriminator": disc}

    # (3) Regularization: the encoder as the generator, against the updated discriminator.
    def gen_loss_fn(e):
      p = {**params, "encoder": e}
      return losses.generator_loss(self.apply(p, "discriminate", self.apply(p, "encode", images)))

    g_loss, grads = jax.value_and_grad(gen_loss_fn)(params["encoder"])
    enc, gen_opt = _update(state.gen_tx, grads, state.gen_opt, params["encoder"])
    params = {**params, "encoder": enc}
    d_accuracy = 0.5 * (jnp.mean(real > 0) + jnp.mean(fake < 0))
    state = state.replace(
      step=state.step + 1, params=params, ae_opt=ae_opt, disc_opt=disc_opt, gen_opt=gen_opt
    )
    return state, {
      "loss": recon,
      "recon_bce": recon,
      "d_loss": d_loss,
      "g_loss": g_loss,
      "d_accuracy": d_accuracy,
    }

  def eval_step(self, state, batch):
    images = augment.to_float(batch["image"])
    params = state.params
    codes = self.apply(params, "encode", images)
    logits = self.apply(params, "decode", codes)
    bce = losses.binary_cross_entropy_with_logits(logits, images)
    prior = jax.random.normal(content_key(self.config.seed + 1, batch["image"]), codes.shape)
    real = self.apply(params, "discriminate", prior)
    fake = self.apply(params, "discriminate", codes)
    mask = batch["mask"]
    return {
      "recon_bce": jnp.sum(jnp.mean(bce.reshape(bce.shape[0], -1), -1) * mask),
      "psnr": jnp.sum(psnr(jax.nn.sigmoid(logits), images) * mask),
      # float, not bool: bool + bool would be a logical or.
      "d_accuracy": jnp.sum(
        0.5 * ((real > 0).astype(jnp.float32) + (fake < 0).astype(jnp.float32)) * mask
      ),
      "count": jnp.sum(mask),
    }

  def finalize(self, state, ctx):
    results = {}
    if "val" in ctx.splits:
      results.update({f"val_{k}": v for k, v in ctx.evaluate(state, ctx.splits["val"]).items()})
    split = ctx.splits.get("test")
    if split is None:
      return results
    test = ctx.evaluate(state, split)
    results.update({f"test_{k}": v for k, v in test.items()})
    data = test_arrays(split)
    images = np.asarray(data["image"], np.float32) / 255.0
    variables = {"params": state.params}
    encode = jax.jit(lambda v, x: self.model.apply(v, x, method="encode"))
    codes = batched(
      lambda b: {"z": encode(variables, b["x"])}, {"x": images}, self.config.batch_size
    )["z"]
    # How close the aggregate posterior is to N(0, I): per-dimension moments of the codes.
    results.update(
      test_code_mean_abs=float(np.abs(codes.mean(0)).mean()),
      test_code_std=float(codes.std(0).mean()),
      test_examples=float(len(images)),
    )
    decode_probs = _decode_fn(self.model, variables, self.config.batch_size)
    viz.labelled_rows(
      os.path.join(ctx.workdir, "reconstructions.png"),
      [images[:12], decode_probs(codes[:12])],
      ["test image", "reconstruction"],
    )
    prior = np.random.default_rng(1).standard_normal((5000, codes.shape[1])).astype(np.float32)
    latent_pictures(
      ctx.workdir,
      ctx.writer,
      ctx.num_steps,
      decode=decode_probs,
      codes=codes,
      labels=data["label"],
      class_names=split.class_names,
      test_images=images,
      prior_samples=prior,
      title=f"AAE, latent {codes.shape[1]}",
    )
    ctx.writer.write_scalars(
      ctx.num_steps, {f"test/{k[5:]}": v for k, v in results.items() if f"val_{k[5:]}" in results}
    )
    return results
