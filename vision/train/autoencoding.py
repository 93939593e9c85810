"""Autoencoding tasks: plain reconstruction, denoising and super-resolution.

``build(config, splits, num_steps)`` returns one pure step for all three
tasks; ``config.task`` picks what differs: the *corruption* that turns the
clean targets in [0, 1] into the model's input (identity, noise, or
downsampling; random draws seeded by ``fold_in(rng, step)``, a new corruption
every step), the *baseline* the model must beat (none, the noisy input, clipped
bicubic upsampling) and the rows of the reconstruction picture. The model's
logits are fitted to the clean targets with binary cross-entropy on logits
(``loss='bce'``) or the mean squared error of the sigmoid (``loss='mse'``).

The report corrupts the whole test split once with a fixed seed and reports
PSNR of the outputs against the clean images next to the baseline's.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision import losses
from vision.data import augment
from vision.errors import ConfigError
from vision.evaluate import image_quality, reconstructions
from vision.evaluate.batched import batched_apply
from vision.models.registry import create_model, model_kwargs
from vision.train.optim import make_optimizer
from vision.train.state import TrainState
from vision.train.task import Task

NOISE_KINDS = ("gaussian", "salt_pepper")
LOSSES = ("bce", "mse")


def content_key(seed: int, images: jax.Array) -> jax.Array:
  """A key fixed by the batch's pixels: the same validation batch gets the same draws each time."""
  return jax.random.fold_in(jax.random.key(seed), jnp.sum(images.astype(jnp.int32)))


def val_results(state, ctx) -> dict[str, float]:
  """``val_<metric>`` of the final state, when there is a validation split."""
  if "val" not in ctx.splits:
    return {}
  return {f"val_{k}": v for k, v in ctx.evaluate(state, ctx.splits["val"]).items()}


def write_test_scalars(ctx, results: dict[str, float]) -> None:
  """``test/<metric>`` for every test metric that also has a ``val_`` counterpart."""
  ctx.writer.write_scalars(
    ctx.num_steps, {f"test/{k[5:]}": v for k, v in results.items() if f"val_{k[5:]}" in results}
  )


# -- what differs between the three tasks ----------------------------------------------------------
def _no_corruption(config, rng, clean):
  del config, rng
  return clean


def _add_noise(config, rng, clean):
  """``noise.kind`` gaussian (std ``level``, zero-mean, clipped to [0, 1]) or salt_pepper (a
  fraction ``level`` of the pixels set to 0 or 1, half each)."""
  kind, level = config.noise.kind, config.noise.level
  if kind == "gaussian":
    return jnp.clip(clean + level * jax.random.normal(rng, clean.shape), 0.0, 1.0)
  if kind == "salt_pepper":
    hit_rng, salt_rng = jax.random.split(rng)
    hit = jax.random.bernoulli(hit_rng, level, clean.shape)
    salt = jax.random.bernoulli(salt_rng, 0.5, clean.shape).astype(clean.dtype)
    return jnp.where(hit, salt, clean)
  raise ConfigError(f"unknown noise.kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}.")


def _downsample(config, rng, clean):
  """``scale``-times smaller box-filtered images (x2: 14->28, x4: 7->28)."""
  del rng
  return image_quality.average_downsample(clean, config.scale)


# corrupt(config, rng, clean [B, H, W, C] in [0, 1]) -> the model's input
CORRUPTIONS = {"autoencoder": _no_corruption, "denoise": _add_noise, "superres": _downsample}
# baseline(config, inputs) -> what the model must beat, at the target resolution
BASELINES = {
  "autoencoder": None,
  "denoise": lambda config, inputs: inputs,  # the noisy image itself
  "superres": lambda config, inputs: image_quality.bicubic_upsample(inputs, config.scale),
}
# rows(config, inputs, outputs, clean) -> (picture rows, row titles)
PICTURE_ROWS = {
  "autoencoder": lambda config, *arrays: reconstructions.reconstruction_rows(*arrays),
  "denoise": lambda config, *arrays: reconstructions.denoising_rows(*arrays),
  "superres": lambda config, *arrays: reconstructions.superres_rows(*arrays, config.scale),
}


def _model_kwargs(config, image_shape) -> dict:
  if config.task == "superres":
    if config.model.name == "superres_net":
      return model_kwargs(config.model, scale=config.scale, channels=image_shape[-1])
    # An autoencoder with an encoder for the small input.
    return model_kwargs(
      config.model, output_shape=image_shape, input_size=image_shape[0] // config.scale
    )
  return model_kwargs(config.model, output_shape=image_shape)


# -- the task --------------------------------------------------------------------------------------
def build(config, splits, num_steps) -> Task:
  """The autoencoding task ``config.task`` ('autoencoder', 'denoise' or 'superres')."""
  if config.task not in CORRUPTIONS:
    raise ConfigError(
      f"autoencoding task {config.task!r} unknown; choose one of {', '.join(CORRUPTIONS)}."
    )
  if config.loss not in LOSSES:
    raise ConfigError(f"unknown loss {config.loss!r}; choose 'bce' or 'mse'.")
  if config.task == "denoise" and config.noise.kind not in NOISE_KINDS:
    raise ConfigError(
      f"unknown noise.kind {config.noise.kind!r}; choose one of {', '.join(NOISE_KINDS)}."
    )
  image_shape = tuple(splits["train"].image_shape)
  if config.task == "superres" and any(side % config.scale for side in image_shape[:2]):
    raise ConfigError(
      f"--config.scale={config.scale}: does not divide the image size "
      f"{image_shape[0]}x{image_shape[1]}; use a scale that divides both sides "
      "(e.g. --config.scale=2) or set --config.data.image_size."
    )
  model = create_model(config.model.name, **_model_kwargs(config, image_shape))
  corrupt = functools.partial(CORRUPTIONS[config.task], config)
  baseline = BASELINES[config.task]

  def init(rng, batch):
    clean = augment.to_float(batch["image"][:1])
    variables = model.init(rng, corrupt(rng, clean), train=False)
    return TrainState.create(params=variables["params"], tx=make_optimizer(config.optim, num_steps))

  def predict(params, inputs):
    logits, _ = model.apply({"params": params}, inputs, train=False)
    return logits

  def loss_fn(params, inputs, clean):
    logits = predict(params, inputs)
    if config.loss == "bce":
      loss = jnp.mean(losses.binary_cross_entropy_with_logits(logits, clean))
    else:
      loss = jnp.mean(jnp.square(jax.nn.sigmoid(logits) - clean))
    return loss, logits

  def train_step(state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    clean = augment.to_float(batch["image"])
    inputs = corrupt(rng, clean)
    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, inputs, clean)
    state = state.apply_gradients(grads)
    return state, {
      "loss": loss,
      "psnr": jnp.mean(image_quality.psnr(jax.nn.sigmoid(logits), clean)),
      "grad_norm": optax.global_norm(grads),
    }

  def per_image(params, inputs, clean) -> dict[str, jax.Array]:
    logits = predict(params, inputs)
    bce = losses.binary_cross_entropy_with_logits(logits, clean)
    out = {
      "loss": jnp.mean(bce.reshape(bce.shape[0], -1), -1),
      "psnr": image_quality.psnr(jax.nn.sigmoid(logits), clean),
    }
    if baseline is not None:
      out["baseline_psnr"] = image_quality.psnr(baseline(config, inputs), clean)
    return out

  def eval_step(state, batch):
    clean = augment.to_float(batch["image"])
    inputs = corrupt(content_key(config.seed + 1, batch["image"]), clean)
    loss_map = per_image(state.params, inputs, clean)
    mask = batch["mask"]
    return {k: jnp.sum(v * mask) for k, v in loss_map.items()} | {"count": jnp.sum(mask)}

  @jax.jit
  def evaluate_test(params, batch):
    out = per_image(params, batch["input"], batch["clean"])
    out["output"] = jax.nn.sigmoid(predict(params, batch["input"]))
    return out

  def report(state, ctx):
    results, split = val_results(state, ctx), ctx.splits.get("test")
    if split is None:  # nothing more to report without a test split
      return results
    data = reconstructions.split_arrays(split)
    clean = augment.to_float(jnp.asarray(data["image"]))
    # One fixed-seed corruption of the whole test split, independent of the batch size.
    inputs = np.asarray(corrupt(jax.random.key(config.seed + 2), clean))
    clean = np.asarray(clean)
    out = batched_apply(
      lambda b: evaluate_test(state.params, b), {"input": inputs, "clean": clean}, config.batch_size
    )
    results.update(reconstructions.psnr_results(out))
    rows, titles = PICTURE_ROWS[config.task](config, inputs, out["output"], clean)
    reconstructions.save_rows(ctx.workdir, rows, titles, ctx.writer, ctx.num_steps)
    if config.task == "autoencoder":
      variables = {"params": state.params}
      encode = jax.jit(lambda v, x: model.apply(v, x, method="encode"))
      decode = jax.jit(lambda v, z: jax.nn.sigmoid(model.apply(v, z, method="decode")))
      reconstructions.random_code_pictures(
        ctx.workdir,
        lambda x: encode(variables, x),
        lambda z: decode(variables, z),
        clean,
        data["label"],
        split.class_names,
        config.batch_size,
      )
    write_test_scalars(ctx, results)
    return results

  return Task(init=init, train_step=train_step, eval_step=eval_step, report=report, splits=splits)
