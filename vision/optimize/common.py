"""Shared pieces of image-space optimization: frozen classifiers, images, classes, losses.

Every optimizer in :mod:`vision.optimize` works on images in pixel space
``[0, 1]``; the network's own preprocessing (ImageNet mean/std, the Lite
``(255x - 127) / 128`` ...) happens inside the model, so a perturbation budget
``eps = 8/255`` means 8 grey levels of the 8-bit picture. Networks are frozen:
their variables are an argument wrapped in ``stop_gradient`` and they run with
``train=False`` (batch norm uses its running statistics and nothing is updated).
"""

from __future__ import annotations

import difflib
import fractions
import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vision.cli import UserError

LogitsFn = Callable[[dict, jax.Array], jax.Array]
FeaturesFn = Callable[[dict, jax.Array], tuple[jax.Array, dict]]

# -- frozen networks ----------------------------------------------------------------------------


@functools.cache
def logits_fn(model) -> LogitsFn:
  """``f(variables, images) -> logits`` of a ``(logits, features)`` model, in inference mode.

  Cached per module so the same callable (a static argument of the jitted
  optimizers) is reused and nothing recompiles.
  """

  def fn(variables, images):
    return model.apply(jax.lax.stop_gradient(variables), images, train=False)[0]

  return fn


@functools.cache
def features_fn(model) -> FeaturesFn:
  """``f(variables, images) -> (logits, features)`` in inference mode, variables frozen."""

  def fn(variables, images):
    return model.apply(jax.lax.stop_gradient(variables), images, train=False)

  return fn


def load_backbone(name: str, weights: str = "") -> tuple:
  """``(model, variables, input_size)`` of an ImageNet backbone; missing weights are a UserError."""
  from vision.models.backbones import backbone_info
  from vision.weights import WeightsError, load_pretrained

  try:
    size = backbone_info(name).input_size
    model, variables = load_pretrained(name, weights or None, num_classes=1000)
  except (WeightsError, FileNotFoundError, ValueError) as e:
    raise UserError(str(e)) from e
  return model, variables, size


# -- images -------------------------------------------------------------------------------------

SKIMAGE_PHOTOS = (
  "astronaut",
  "camera",
  "cat",
  "chelsea",
  "coffee",
  "rocket",
  "clock",
  "hubble_deep_field",
  "immunohistochemistry",
  "colorwheel",
  "retina",
  "coins",
  "moon",
  "page",
  "text",
  "brick",
  "grass",
  "gravel",
)
SKLEARN_PHOTOS = ("china", "flower")


def _builtin_array(name: str) -> np.ndarray | None:
  if name in SKLEARN_PHOTOS:
    from sklearn.datasets import load_sample_image

    return load_sample_image(f"{name}.jpg")
  if name in SKIMAGE_PHOTOS:
    import skimage.data

    return getattr(skimage.data, name)()
  return None


def to_rgb_uint8(array) -> np.ndarray:
  """Grey, RGBA, bool or float arrays -> uint8 [H, W, 3]."""
  array = np.asarray(array)
  if array.dtype == bool:
    array = array.astype(np.uint8) * 255
  elif array.dtype != np.uint8:
    array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
  if array.ndim == 2:
    array = np.stack([array] * 3, axis=-1)
  if array.shape[-1] == 1:
    array = np.repeat(array, 3, axis=-1)
  return np.ascontiguousarray(array[..., :3])


def load_photo(spec: str, size: int) -> np.ndarray:
  """A built-in photo (``chelsea``, ``coffee``, ... ``china``, ``flower``) or an image file.

  Returns float32 ``[size, size, 3]`` in [0, 1] on the 8-bit grid (``k / 255``):
  the whole picture resized (PIL bilinear, as ``scripts/classify.py``), so a
  perturbation of the loaded image is exactly representable in a uint8 PNG.
  """
  from PIL import Image

  array = _builtin_array(spec)
  if array is None:
    if not os.path.isfile(spec):
      raise UserError(
        f"no image {spec!r}: not a file and not a built-in photo "
        f"(skimage.data: {', '.join(SKIMAGE_PHOTOS)}; sklearn: {', '.join(SKLEARN_PHOTOS)})."
      )
    try:
      with Image.open(spec) as image:
        array = np.asarray(image.convert("RGB"))
    except OSError as e:
      raise UserError(f"cannot read image {spec!r}: {e}") from e
  image = Image.fromarray(to_rgb_uint8(array)).resize((size, size), Image.BILINEAR)
  return np.asarray(image, np.float32) / 255.0


def photo_name(spec: str) -> str:
  """A short file-name-safe name of a photo spec (``/a/b/my cat.png`` -> ``my_cat``)."""
  base = os.path.splitext(os.path.basename(spec))[0]
  return "".join(c if c.isalnum() or c in "-_" else "_" for c in base) or "image"


def read_png(path: str) -> np.ndarray:
  """A saved PNG back as float32 [H, W, C] in [0, 1]."""
  from PIL import Image

  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"), np.float32) / 255.0


# -- classes and numbers ------------------------------------------------------------------------


def imagenet_class(spec) -> int:
  """An ImageNet class from its index (``'285'``) or name (``'Egyptian cat'``, any synonym)."""
  from vision.weights.imagenet import class_names

  text = str(spec).strip()
  if text.lstrip("-").isdigit():
    index = int(text)
    if not 0 <= index < 1000:
      raise UserError(f"ImageNet class index {index} is out of range 0..999.")
    return index
  full = class_names(full=True)
  lowered = text.lower().replace("_", " ")
  for index, line in enumerate(full):
    if lowered in (s.strip().lower() for s in line.split(",")):
      return index
  short = class_names()
  close = difflib.get_close_matches(text, short, n=4, cutoff=0.6)
  hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
  raise UserError(
    f"unknown ImageNet class {text!r}.{hint} Give a name from "
    "vision/weights/imagenet_classes.txt or an index 0..999."
  )


def parse_number(text, field: str = "value") -> float:
  """``'8/255'``, ``'0.03'`` or a number -> float (fractions keep eps values exact on the grid)."""
  if isinstance(text, (int, float)):
    return float(text)
  try:
    return float(fractions.Fraction(str(text).strip()))
  except (ValueError, ZeroDivisionError) as e:
    raise UserError(f"{field}: cannot read {text!r} as a number like 8/255 or 0.03.") from e


def split_list(text: str) -> list[str]:
  """``'a, b,c'`` -> ``['a', 'b', 'c']`` (config fields hold lists as comma-separated text)."""
  if isinstance(text, (list, tuple)):
    return [str(t).strip() for t in text if str(t).strip()]
  return [t.strip() for t in str(text).split(",") if t.strip()]


# -- losses -------------------------------------------------------------------------------------


def total_variation(images: jax.Array, reduction: str = "sum") -> jax.Array:
  """Anisotropic L1 total variation per image of ``[B, H, W, C]``: ``[B]``.

  ``'sum'`` is ``tf.image.total_variation``: the sum over pixels and channels of
  the absolute differences between vertical and horizontal neighbours.
  ``'mean'`` divides each of the two sums by its number of terms.
  """
  dy = jnp.abs(images[:, 1:] - images[:, :-1])
  dx = jnp.abs(images[:, :, 1:] - images[:, :, :-1])
  if reduction == "sum":
    return dy.sum(axis=(1, 2, 3)) + dx.sum(axis=(1, 2, 3))
  if reduction == "mean":
    return dy.mean(axis=(1, 2, 3)) + dx.mean(axis=(1, 2, 3))
  raise ValueError(f"unknown reduction {reduction!r}; expected 'sum' or 'mean'.")


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example cross-entropy ``[B]`` with integer labels."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]


def top_k(probs, k: int = 3) -> list[dict]:
  """``[{'index', 'label', 'prob'}]`` of one probability vector (ImageNet names for 1000)."""
  from vision.weights.imagenet import top_k as imagenet_top_k

  return imagenet_top_k(np.asarray(probs), k)


def write_json(path: str, data: dict) -> None:
  from vision.train.writers import write_json as write

  write(path, data)
