"""On-device preprocessing and augmentation, inside the jitted step.

Batches arrive as ``uint8``; these functions turn them into float32 images in
[0, 1] and apply seeded random crops, flips and resizing per example.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def to_float(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [0, 1]; float inputs pass through."""
  if jnp.issubdtype(images.dtype, jnp.integer):
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def resize(images: jax.Array, size: int | tuple[int, int] | None) -> jax.Array:
  """Bilinear (antialiased when shrinking) resize of [B, H, W, C] to ``size``."""
  if not size:
    return images
  height, width = (size, size) if isinstance(size, int) else tuple(size)
  if images.shape[1:3] == (height, width):
    return images
  return jax.image.resize(
    images, (images.shape[0], height, width, images.shape[3]), method="bilinear"
  )


def random_flip(rng: jax.Array, images: jax.Array) -> jax.Array:
  """Flips each image left-right with probability 1/2."""
  flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1, :], images)


def random_crop(rng: jax.Array, images: jax.Array, padding: int) -> jax.Array:
  """Pads each side by ``padding`` (edge values) and crops back at a random offset."""
  if padding <= 0:
    return images
  batch, height, width, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="edge")
  offsets = jax.random.randint(rng, (batch, 2), 0, 2 * padding + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, image.shape[2]))

  return jax.vmap(crop)(padded, offsets)


def random_resized_crop(
  rng: jax.Array, images: jax.Array, size: int, min_area: float = 0.35
) -> jax.Array:
  """Inception-style crop: a random box of ``min_area``..1 of the area, resized to ``size``."""
  batch, height, width, channels = images.shape
  area_rng, ratio_rng, pos_rng = jax.random.split(rng, 3)
  area = jax.random.uniform(area_rng, (batch,), minval=min_area, maxval=1.0)
  log_ratio = jax.random.uniform(ratio_rng, (batch,), minval=jnp.log(3 / 4), maxval=jnp.log(4 / 3))
  ratio = jnp.exp(log_ratio)
  box_h = jnp.clip(jnp.sqrt(area / ratio), 0.1, 1.0)  # fraction of the height
  box_w = jnp.clip(jnp.sqrt(area * ratio), 0.1, 1.0)
  corner = jax.random.uniform(pos_rng, (batch, 2)) * jnp.stack([1 - box_h, 1 - box_w], -1)

  def crop(image, top_left, box):
    # Scale-and-translate maps the box onto the output grid in one resampling.
    scale = jnp.array([size / (box[0] * height), size / (box[1] * width)])
    translation = -top_left * jnp.array([height, width]) * scale
    return jax.image.scale_and_translate(
      image, (size, size, channels), (0, 1), scale, translation, method="linear"
    )

  return jax.vmap(crop)(images, corner, jnp.stack([box_h, box_w], -1))


def train_preprocess(rng: jax.Array, images: jax.Array, aug) -> jax.Array:
  """The training-time pipeline selected by an ``aug`` config group."""
  images = to_float(images)
  crop_rng, flip_rng = jax.random.split(rng)
  if aug.get("random_resized_crop", False) and aug.get("size"):
    images = random_resized_crop(crop_rng, images, aug.size, aug.get("min_area", 0.35))
  else:
    images = resize(images, aug.get("size"))
    images = random_crop(crop_rng, images, aug.get("crop_padding", 0))
  if aug.get("flip", False):
    images = random_flip(flip_rng, images)
  return images


def eval_preprocess(images: jax.Array, aug) -> jax.Array:
  return resize(to_float(images), aug.get("size"))


def mixup(
  rng: jax.Array, images: jax.Array, targets: jax.Array, alpha: float
) -> tuple[jax.Array, jax.Array]:
  """Mixup (Zhang et al., 2018): convex combinations of example pairs and their targets.

  One ``lam ~ Beta(alpha, alpha)`` per batch mixes every example with a random
  partner (a permutation of the batch): ``lam * x + (1 - lam) * x[perm]``, and
  the same for the (soft) ``targets`` [B, classes]. ``alpha <= 0`` returns
  the inputs unchanged. Images must be floats (after ``train_preprocess``).
  """
  if alpha <= 0:
    return images, targets
  lam_rng, perm_rng = jax.random.split(rng)
  lam = jax.random.beta(lam_rng, alpha, alpha)
  perm = jax.random.permutation(perm_rng, images.shape[0])
  images = lam.astype(images.dtype) * images + (1 - lam).astype(images.dtype) * images[perm]
  targets = lam * targets + (1 - lam) * targets[perm]
  return images, targets
