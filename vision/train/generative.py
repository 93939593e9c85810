"""Latent-variable autoencoders: the VAE and the adversarial autoencoder (AAE).

VAE (``task='vae'``). Data protocol: pixels are Bernoulli variables. Training
draws a fresh binarization of the grey levels every step (dynamic
binarization, ``vae.binarize='dynamic'``); the test split is binarized once on
the host with a fixed seed (:func:`vision.evaluate.elbo.fixed_binarization`),
so every model is scored on the same binary images. The loss per image is
``-log p(x|z) + w * KL(q(z|x) || N(0, I))`` with one reparameterized sample and
the analytic KL, ``w = beta * min(1, step / kl_warmup_steps)``; the reported
negative ELBO always uses w = 1. The report gives the negative ELBO
(reconstruction + KL) in nats per image and the IWAE bound with K samples.

AAE (``task='aae'``). One jitted step performs the three updates of Makhzani
et al. (2015), each with its own optax state: (1) encoder + decoder on the
reconstruction loss; (2) the latent discriminator on prior samples N(0, I)
(real) vs codes of the batch (fake), stepping the discriminator's own
optimizer; (3) the encoder as a generator, to make its codes look like prior
samples. A test checks that the discriminator learns.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vision import losses
from vision.data import augment
from vision.errors import ConfigError
from vision.evaluate import elbo, reconstructions, vae_bounds
from vision.evaluate.batched import batched_apply
from vision.evaluate.image_quality import psnr
from vision.evaluate.latent_pictures import batched_decoder, latent_pictures
from vision.models.registry import create_model, model_kwargs
from vision.ops import dropout
from vision.ops.shards import mean_value_and_grad, resolve_shards
from vision.train.autoencoding import content_key, val_results, write_test_scalars
from vision.train.optim import make_optimizer
from vision.train.state import AAEState, TrainState, apply_updates
from vision.train.task import Task

BINARIZE = ("dynamic", "none")


def build(config, splits, num_steps) -> Task:
  """The task ``config.task``: 'vae' or 'aae'."""
  if config.task == "vae":
    return build_vae(config, splits, num_steps)
  if config.task == "aae":
    return build_aae(config, splits, num_steps)
  raise ConfigError(f"latent-variable task {config.task!r} unknown; choose 'vae' or 'aae'.")


def _create(config, splits):
  image_shape = tuple(splits["train"].image_shape)
  return create_model(config.model.name, **model_kwargs(config.model, output_shape=image_shape))


# -- VAE -------------------------------------------------------------------------------------------
def build_vae(config, splits, num_steps) -> Task:
  """Variational autoencoder with a Bernoulli decoder (see the module docstring)."""
  cfg = config.vae
  if cfg.binarize not in BINARIZE:
    raise ConfigError(f"unknown vae.binarize {cfg.binarize!r}; 'dynamic' or 'none'.")
  model = _create(config, splits)

  def init(rng, batch):
    images = augment.to_float(batch["image"][:1])
    variables = model.init({"params": rng, "latent": rng}, images, train=False)
    return TrainState.create(params=variables["params"], tx=make_optimizer(config.optim, num_steps))

  def binarize(rng, images_uint8):
    probs = augment.to_float(images_uint8)
    if cfg.binarize == "dynamic":
      # == jax.random.bernoulli(rng, probs), without its rolled Threefry loop on CPU
      return dropout.bernoulli(rng, probs).astype(jnp.float32)
    return probs

  def terms(params, images, rng=None, noise=None):
    """Per-image reconstruction NLL and analytic KL [B] from one reparameterized sample.

    The sample uses ``noise`` [B, latent] ~ N(0, I) if given, else draws from ``rng``.
    """
    rngs = {} if noise is not None else {"latent": rng}
    logits, features = model.apply({"params": params}, images, train=True, noise=noise, rngs=rngs)
    recon = -losses.reconstruction_log_likelihood(
      cfg.likelihood, logits, images, cfg.get("gaussian_log_scale", 0.0)
    )
    kl = losses.kl_to_standard_normal(features["mean"], features["logvar"])
    return recon, kl

  def train_step(state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    data_rng, latent_rng = jax.random.split(rng)
    images = binarize(data_rng, batch["image"])
    weight = losses.kl_weight(state.step, cfg.beta, cfg.kl_warmup_steps)

    # One draw for the whole batch, so the step computes the same numbers for
    # any number of gradient shards (vision/ops/shards.py).
    noise = jax.random.normal(latent_rng, (images.shape[0], config.model.latent_dim))

    def per_example(params, part):
      recon, kl = terms(params, part["images"], noise=part["noise"])
      return recon + weight * kl, (recon, kl)

    shards = resolve_shards(cfg.get("grad_shards", 0), images.shape[0])
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

  def eval_step(state, batch):
    data_rng, latent_rng = jax.random.split(content_key(config.seed + 1, batch["image"]))
    images = binarize(data_rng, batch["image"])
    recon, kl = terms(state.params, images, latent_rng)
    mask = batch["mask"]
    return {
      "neg_elbo": jnp.sum((recon + kl) * mask),
      "recon": jnp.sum(recon * mask),
      "kl": jnp.sum(kl * mask),
      "count": jnp.sum(mask),
    }

  def report(state, ctx):
    results, split = val_results(state, ctx), ctx.splits.get("test")
    if split is None:  # nothing more to report without a test split
      return results
    batch_size = config.batch_size
    data = reconstructions.split_arrays(split)
    if cfg.binarize == "dynamic":
      images = elbo.fixed_binarization(data["image"], seed=cfg.test_binarization_seed)
    else:
      images = np.asarray(data["image"], np.float32) / 255.0
    variables = {"params": state.params}
    out = vae_bounds.negative_elbo(model, variables, images, batch_size, config.seed + 3)
    results.update(
      test_neg_elbo=float(out["neg_elbo"].mean()),
      test_recon=float(out["recon"].mean()),
      test_kl=float(out["kl"].mean()),
      test_examples=float(len(images)),
    )
    if cfg.likelihood == "bernoulli":
      # The IWAE bound with vae.iwae_samples samples on the first vae.iwae_examples images;
      # smaller batches keep iwae_chunk * batch decoded images in memory at once.
      n = min(len(images), cfg.iwae_examples) if cfg.iwae_examples else len(images)
      bounds = vae_bounds.iwae(
        model,
        variables,
        images[:n],
        cfg.iwae_batch_size,
        config.seed + 4,
        cfg.iwae_samples,
        cfg.iwae_chunk,
      )
      results.update(
        test_iwae_nll=float(bounds["iwae"].mean()),
        test_iwae_neg_elbo_same_samples=float(bounds["elbo_k"].mean()),
        test_iwae_examples=float(n),
        test_iwae_samples=float(cfg.iwae_samples),
      )
    # Active units (Burda et al.): latent dimensions whose posterior mean varies with x.
    results["test_active_units"] = float(np.sum(np.var(out["mean"], axis=0) > 1e-2))

    decode = batched_decoder(model, variables, batch_size)
    count = reconstructions.PICTURE_COUNT
    reconstructions.save_rows(
      ctx.workdir,
      [data["image"][:count], images[:count], decode(out["mean"][:count])],
      ["test image", "binarized", "reconstruction (mean)"],
    )
    latent_pictures(
      ctx.workdir,
      ctx.writer,
      ctx.num_steps,
      decode=decode,
      codes=out["mean"],
      labels=data["label"],
      class_names=split.class_names,
      test_images=images,
      title=f"{config.model.name}, latent {config.model.latent_dim}",
    )
    write_test_scalars(ctx, results)
    return results

  return Task(init=init, train_step=train_step, eval_step=eval_step, report=report, splits=splits)


# -- AAE -------------------------------------------------------------------------------------------
def _with_lr(optim, learning_rate):
  optim = ml_collections.ConfigDict(optim.to_dict())
  optim.learning_rate = learning_rate
  return optim


def build_aae(config, splits, num_steps) -> Task:
  """Adversarial autoencoder with a trained latent discriminator (see the module docstring)."""
  model = _create(config, splits)
  cfg = config.aae

  def init(rng, batch):
    images = augment.to_float(batch["image"][:1])
    params = model.init(rng, images, train=False)["params"]
    ae_tx = make_optimizer(config.optim, num_steps)
    disc_tx = make_optimizer(_with_lr(config.optim, cfg.disc_learning_rate), num_steps)
    gen_tx = make_optimizer(_with_lr(config.optim, cfg.gen_learning_rate), num_steps)
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

  def apply(params, method, *args):
    return model.apply({"params": params}, *args, method=method)

  def recon_loss(params, images):
    logits = apply(params, "decode", apply(params, "encode", images))
    return jnp.mean(losses.binary_cross_entropy_with_logits(logits, images))  # per pixel

  def train_step(state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    images = augment.to_float(batch["image"])
    params = state.params
    # (1) Reconstruction: encoder and decoder.
    auto = {"encoder": params["encoder"], "decoder": params["decoder"]}
    recon, grads = jax.value_and_grad(lambda a: recon_loss({**params, **a}, images))(auto)
    auto, ae_opt = apply_updates(state.ae_tx, grads, state.ae_opt, auto)
    params = {**params, **auto}
    # (2) Discriminator: prior samples are real, codes of the batch are fake.
    codes = jax.lax.stop_gradient(apply(params, "encode", images))
    prior = jax.random.normal(rng, codes.shape)

    def disc_loss_fn(d):
      p = {**params, "discriminator": d}
      real, fake = apply(p, "discriminate", prior), apply(p, "discriminate", codes)
      return losses.discriminator_loss(real, fake), (real, fake)

    (d_loss, (real, fake)), grads = jax.value_and_grad(disc_loss_fn, has_aux=True)(
      params["discriminator"]
    )
    disc, disc_opt = apply_updates(state.disc_tx, grads, state.disc_opt, params["discriminator"])
    params = {**params, "discriminator": disc}

    # (3) Regularization: the encoder as the generator, against the updated discriminator.
    def gen_loss_fn(e):
      p = {**params, "encoder": e}
      return losses.generator_loss(apply(p, "discriminate", apply(p, "encode", images)))

    g_loss, grads = jax.value_and_grad(gen_loss_fn)(params["encoder"])
    enc, gen_opt = apply_updates(state.gen_tx, grads, state.gen_opt, params["encoder"])
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

  def eval_step(state, batch):
    images = augment.to_float(batch["image"])
    params = state.params
    codes = apply(params, "encode", images)
    logits = apply(params, "decode", codes)
    bce = losses.binary_cross_entropy_with_logits(logits, images)
    prior = jax.random.normal(content_key(config.seed + 1, batch["image"]), codes.shape)
    real = apply(params, "discriminate", prior)
    fake = apply(params, "discriminate", codes)
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

  def report(state, ctx):
    results, split = val_results(state, ctx), ctx.splits.get("test")
    if split is None:  # nothing more to report without a test split
      return results
    results.update({f"test_{k}": v for k, v in ctx.evaluate(state, split).items()})
    data = reconstructions.split_arrays(split)
    images = np.asarray(data["image"], np.float32) / 255.0
    variables = {"params": state.params}
    encode = jax.jit(lambda v, x: model.apply(v, x, method="encode"))
    codes = batched_apply(
      lambda b: {"z": encode(variables, b["x"])}, {"x": images}, config.batch_size
    )["z"]
    # How close the aggregate posterior is to N(0, I): per-dimension moments of the codes.
    results.update(
      test_code_mean_abs=float(np.abs(codes.mean(0)).mean()),
      test_code_std=float(codes.std(0).mean()),
      test_examples=float(len(images)),
    )
    decode = batched_decoder(model, variables, config.batch_size)
    count = reconstructions.PICTURE_COUNT
    reconstructions.save_rows(
      ctx.workdir,
      [images[:count], decode(codes[:count])],
      ["test image", "reconstruction"],
    )
    prior = np.random.default_rng(1).standard_normal((5000, codes.shape[1])).astype(np.float32)
    latent_pictures(
      ctx.workdir,
      ctx.writer,
      ctx.num_steps,
      decode=decode,
      codes=codes,
      labels=data["label"],
      class_names=split.class_names,
      test_images=images,
      prior_samples=prior,
      title=f"AAE, latent {codes.shape[1]}",
    )
    write_test_scalars(ctx, results)
    return results

  return Task(init=init, train_step=train_step, eval_step=eval_step, report=report, splits=splits)
