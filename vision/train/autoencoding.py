"""Autoencoding tasks: plain reconstruction, denoising and super-resolution.

One class per task, sharing one pure step. The step turns the uint8 batch into
clean targets in [0, 1], *corrupts* them into the model's input (identity,
noise, or downsampling; random draws seeded by ``fold_in(rng, step)``, a new
corruption every step), and fits the model's logits to the clean targets with
binary cross-entropy on logits (``loss='bce'``, the lesson's loss) or the mean
squared error of the sigmoid (``loss='mse'``).

The final evaluation corrupts the whole test split once with a fixed seed,
reports PSNR of the outputs against the clean images next to the baseline
(the noisy input for denoising, clipped bicubic upsampling for
super-resolution), and draws pictures.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision import losses, viz
from vision.data import augment
from vision.evaluate import image_quality
from vision.models.registry import create_model
from vision.train.optim import make_optimizer
from vision.train.state import TrainState
from vision.train.task import Task

MODEL_META_FIELDS = ("name", "weights", "dtype")
NOISE_KINDS = ("gaussian", "salt_pepper")


def model_kwargs(model_config) -> dict:
  kwargs = {k: v for k, v in model_config.items() if k not in MODEL_META_FIELDS}
  kwargs["dtype"] = jnp.dtype(model_config.get("dtype", "float32"))
  return kwargs


def content_key(seed: int, images: jax.Array) -> jax.Array:
  """A key fixed by the batch's pixels: the same validation batch gets the same draws each time."""
  return jax.random.fold_in(jax.random.key(seed), jnp.sum(images.astype(jnp.int32)))


def test_arrays(split, limit: int = 0) -> dict[str, np.ndarray]:
  """The whole (or the first ``limit`` examples of a) split in memory: 'image' uint8, 'label'."""
  n = min(len(split), limit) if limit else len(split)
  return split.read(np.arange(n))


def batched(fn, arrays: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  """Applies a jitted ``fn(dict) -> dict`` over fixed-size batches (last one padded)."""
  n = len(next(iter(arrays.values())))
  outputs: dict[str, list] = {}
  for start in range(0, n, batch_size):
    idx = np.minimum(np.arange(start, start + batch_size), n - 1)
    result = jax.device_get(fn({k: v[idx] for k, v in arrays.items()}))
    for key, value in result.items():
      outputs.setdefault(key, []).append(np.asarray(value)[: min(batch_size, n - start)])
  return {k: np.concatenate(v) for k, v in outputs.items()}


class AutoencoderTask(Task):
  """Reconstruct clean images from (possibly corrupted) inputs."""

  picture_count = 12

  def __init__(self, config, splits):
    super().__init__(config, splits)
    self.image_shape = tuple(splits["train"].image_shape)
    self.model = create_model(config.model.name, **self.model_kwargs(config.model))

  def model_kwargs(self, model_config) -> dict:
    return {"output_shape": self.image_shape, **model_kwargs(model_config)}

  # -- corruption (identity here; overridden by denoising and super-resolution) ----------------
  def corrupt(self, rng, clean):
    del rng
    return clean

  def baseline(self, inputs):
    """What the model must beat, at the target resolution (None: no baseline)."""
    del inputs
    return None

  # -- state and steps ---------------------------------------------------------------------
  def init(self, rng, batch):
    clean = augment.to_float(batch["image"][:1])
    variables = self.model.init(rng, self.corrupt(rng, clean), train=False)
    return TrainState.create(
      params=variables["params"], tx=make_optimizer(self.config.optim, self.num_steps)
    )

  def predict(self, params, inputs):
    logits, _ = self.model.apply({"params": params}, inputs, train=False)
    return logits

  def loss_fn(self, params, inputs, clean):
    logits = self.predict(params, inputs)
    if self.config.loss == "bce":
      loss = jnp.mean(losses.binary_cross_entropy_with_logits(logits, clean))
    elif self.config.loss == "mse":
      loss = jnp.mean(jnp.square(jax.nn.sigmoid(logits) - clean))
    else:
      raise ValueError(f"unknown loss {self.config.loss!r}; choose 'bce' or 'mse'.")
    return loss, logits

  def train_step(self, state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    clean = augment.to_float(batch["image"])
    inputs = self.corrupt(rng, clean)
    (loss, logits), grads = jax.value_and_grad(self.loss_fn, has_aux=True)(
      state.params, inputs, clean
    )
    state = state.apply_gradients(grads)
    return state, {
      "loss": loss,
      "psnr": jnp.mean(image_quality.psnr(jax.nn.sigmoid(logits), clean)),
      "grad_norm": optax.global_norm(grads),
    }

  def eval_step(self, state, batch):
    clean = augment.to_float(batch["image"])
    inputs = self.corrupt(content_key(self.config.seed + 1, batch["image"]), clean)
    loss_map = self.per_image(state.params, inputs, clean)
    mask = batch["mask"]
    return {k: jnp.sum(v * mask) for k, v in loss_map.items()} | {"count": jnp.sum(mask)}

  def per_image(self, params, inputs, clean) -> dict[str, jax.Array]:
    logits = self.predict(params, inputs)
    bce = losses.binary_cross_entropy_with_logits(logits, clean)
    out = {
      "loss": jnp.mean(bce.reshape(bce.shape[0], -1), -1),
      "psnr": image_quality.psnr(jax.nn.sigmoid(logits), clean),
    }
    base = self.baseline(inputs)
    if base is not None:
      out["baseline_psnr"] = image_quality.psnr(base, clean)
    return out

  # -- final evaluation ----------------------------------------------------------------------
  def finalize(self, state, ctx):
    results = {}
    if "val" in ctx.splits:
      results.update({f"val_{k}": v for k, v in ctx.evaluate(state, ctx.splits["val"]).items()})
    split = ctx.splits.get("test")
    if split is None:
      return results
    data = test_arrays(split)
    clean = augment.to_float(jnp.asarray(data["image"]))
    # One fixed-seed corruption of the whole test split, independent of the batch size.
    inputs = np.asarray(self.corrupt(jax.random.key(self.config.seed + 2), clean))
    clean = np.asarray(clean)

    @jax.jit
    def evaluate(params, batch):
      out = self.per_image(params, batch["input"], batch["clean"])
      out["output"] = jax.nn.sigmoid(self.predict(params, batch["input"]))
      return out

    out = batched(
      lambda b: evaluate(state.params, b), {"input": inputs, "clean": clean}, self.config.batch_size
    )
    results.update(
      test_loss=float(out["loss"].mean()),
      test_psnr=float(out["psnr"].mean()),
      test_examples=float(len(clean)),
    )
    if "baseline_psnr" in out:
      results["baseline_psnr"] = float(out["baseline_psnr"].mean())
      results["psnr_gain_db"] = results["test_psnr"] - results["baseline_psnr"]
    self.pictures(state, ctx, data, inputs, out["output"], clean)
    ctx.writer.write_scalars(
      ctx.num_steps, {f"test/{k[5:]}": v for k, v in results.items() if f"val_{k[5:]}" in results}
    )
    return results

  def picture_rows(self, inputs, outputs, clean):
    n = self.picture_count
    return [inputs[:n], outputs[:n]], ["input", "reconstruction"]

  def pictures(self, state, ctx, data, inputs, outputs, clean):
    rows, titles = self.picture_rows(inputs, outputs, clean)
    viz.labelled_rows(os.path.join(ctx.workdir, "reconstructions.png"), rows, titles)
    ctx.writer.write_images(
      ctx.num_steps,
      {"test/reconstructions": viz.image_grid(np.concatenate(rows), ncols=len(rows[0]))},
    )
    if self.config.task != "autoencoder":
      return
    # A plain autoencoder's code space is not generative: decode random codes.
    variables = {"params": state.params}
    encode = jax.jit(lambda v, x: self.model.apply(v, x, method="encode"))
    decode = jax.jit(lambda v, z: jax.nn.sigmoid(self.model.apply(v, z, method="decode")))
    codes = batched(
      lambda b: {"z": encode(variables, b["x"])}, {"x": clean}, self.config.batch_size
    )["z"]
    rng = np.random.default_rng(0)
    low, high = codes.min(0), codes.max(0)
    random_codes = rng.uniform(low, high, (24, *codes.shape[1:])).astype(np.float32)
    viz.save_grid(
      os.path.join(ctx.workdir, "random_codes.png"), decode(variables, random_codes), ncols=12
    )
    if codes.ndim == 2 and codes.shape[1] == 2:
      viz.plot_latent_scatter(
        os.path.join(ctx.workdir, "latent_scatter.png"),
        codes,
        data["label"],
        ctx.splits["test"].class_names,
        title="autoencoder: test codes (2-D bottleneck)",
      )


class DenoisingTask(AutoencoderTask):
  """Clean images from noisy ones: ``noise.kind`` gaussian (std ``level``) or salt_pepper.

  Gaussian noise is zero-mean and the result clipped to [0, 1]; salt-and-pepper
  sets a fraction ``level`` of the pixels to 0 or 1 (half each).
  """

  def corrupt(self, rng, clean):
    kind, level = self.config.noise.kind, self.config.noise.level
    if kind == "gaussian":
      return jnp.clip(clean + level * jax.random.normal(rng, clean.shape), 0.0, 1.0)
    if kind == "salt_pepper":
      hit_rng, salt_rng = jax.random.split(rng)
      hit = jax.random.bernoulli(hit_rng, level, clean.shape)
      salt = jax.random.bernoulli(salt_rng, 0.5, clean.shape).astype(clean.dtype)
      return jnp.where(hit, salt, clean)
    raise ValueError(f"unknown noise.kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}.")

  def baseline(self, inputs):
    return inputs  # the noisy image itself

  def picture_rows(self, inputs, outputs, clean):
    n = self.picture_count
    return [inputs[:n], outputs[:n], clean[:n]], ["noisy", "denoised", "clean"]


class SuperResolutionTask(AutoencoderTask):
  """Images from ``scale``-times smaller box-filtered ones (x2: 14->28, x4: 7->28)."""

  def model_kwargs(self, model_config) -> dict:
    kwargs = model_kwargs(model_config)
    scale = self.config.scale
    if self.config.model.name == "superres_net":
      return {**kwargs, "scale": scale, "channels": self.image_shape[-1]}
    # The lesson's autoencoder with an encoder for the small input.
    return {**kwargs, "output_shape": self.image_shape, "input_size": self.image_shape[0] // scale}

  def corrupt(self, rng, clean):
    del rng
    return image_quality.average_downsample(clean, self.config.scale)

  def baseline(self, inputs):
    return image_quality.bicubic_upsample(inputs, self.config.scale)

  def picture_rows(self, inputs, outputs, clean):
    n = self.picture_count
    scale = self.config.scale
    nearest = np.repeat(np.repeat(inputs[:n], scale, 1), scale, 2)
    bicubic = np.asarray(image_quality.bicubic_upsample(jnp.asarray(inputs[:n]), scale))
    return (
      [nearest, bicubic, outputs[:n], clean[:n]],
      [f"input x1/{scale}", "bicubic", "network", "original"],
    )
