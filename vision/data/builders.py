"""tensorflow-datasets builders for offline sources, prepared without TensorFlow.

Images are stored as raw ``uint8`` tensors (fixed size) or as encoded bytes
(image folders, whose files differ in size) because TFDS' ``Image`` feature
needs TensorFlow to encode. Everything is written as ``array_record`` so that
``tfds.data_source`` can read it with random access for grain.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from sklearn.datasets import load_digits

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (the MNIST format), gzipped or not."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
  if zero != 0 or dtype_code != 0x08:
    raise ValueError(f"{path} is not an IDX file of uint8 values.")
  shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
  array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
  if array.size != int(np.prod(shape)):
    raise ValueError(f"{path} is truncated: expected {shape}, found {array.size} values.")
  return array.reshape(shape)


def _find_idx(folder: str, stem: str) -> str:
  for name in (stem + ".gz", stem):
    path = os.path.join(folder, name)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(
    f"Fashion-MNIST file {stem}[.gz] not found in {folder}. Install the Debian package: "
    "`apt-get install -y dataset-fashion-mnist`, or set VISION_FASHION_MNIST_DIR to a "
    "folder holding the four IDX files."
  )


class FashionMnistOffline(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST from the IDX files of Debian's ``dataset-fashion-mnist``."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(
      builder=self,
      description="Fashion-MNIST (Xiao et al. 2017), 60k train / 10k test, 28x28 grey.",
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
          "label": tfds.features.ClassLabel(names=FASHION_MNIST_CLASSES),
        }
      ),
      supervised_keys=("image", "label"),
      homepage="https://github.com/zalandoresearch/fashion-mnist",
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    folder = os.environ.get("VISION_FASHION_MNIST_DIR", FASHION_MNIST_DIR)
    return {
      "train": self._generate_examples(folder, "train"),
      "test": self._generate_examples(folder, "t10k"),
    }

  def _generate_examples(self, folder, prefix):
    images = read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
    if len(images) != len(labels):
      raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels.")
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image[..., None], "label": int(label)}


class SklearnDigits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8x8 digits (1,797 images), upscaled to 0..255, split 1,500/297."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(
      builder=self,
      description="UCI optical digits as shipped by scikit-learn, 8x8 grey.",
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
          "label": tfds.features.ClassLabel(num_classes=10),
        }
      ),
      supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:1500], order[1500:]
    return {
      "train": self._generate_examples(images[train], digits.target[train]),
      "test": self._generate_examples(images[test], digits.target[test]),
    }

  def _generate_examples(self, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image, "label": int(label)}


def folder_classes(root: str) -> list[str]:
  if not os.path.isdir(root):
    raise FileNotFoundError(
      f"image folder {root!r} does not exist; expected ROOT/CLASS_NAME/*.jpg (one sub-folder "
      "per class)."
    )
  classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  if len(classes) < 2:
    raise ValueError(
      f"image folder {root!r} has {len(classes)} class sub-folder(s); expected at least 2 "
      "(ROOT/CLASS_NAME/*.jpg)."
    )
  return classes


def check_image(path: str) -> str | None:
  """Returns None if PIL can fully decode ``path``, else the reason it cannot."""
  try:
    with Image.open(path) as image:
      image.load()
      if image.width < 1 or image.height < 1:
        return "empty image"
  except Exception as e:  # noqa: BLE001 - any decoder failure means a bad file
    return f"{type(e).__name__}: {e}"
  return None


def _folder_config_name(root: str, test_fraction: float) -> str:
  digest = hashlib.sha1(f"{os.path.abspath(root)}|{test_fraction}".encode()).hexdigest()[:10]
  return f"f{digest}"


class ImageFolder(tfds.core.GeneratorBasedBuilder):
  """A user's folder of images, one sub-folder per class (e.g. PetImages/{Cat,Dog}).

  The encoded file bytes are stored as they are and decoded by grain workers,
  so preparing a folder of 25k JPEGs does not decode them twice. Unreadable
  files are skipped and counted (``on_bad_image='skip'``, the default) or stop
  the build with an error naming the file (``'error'``). Files are split into
  train and test by a hash of their relative path, so the split is stable when
  files are added.
  """

  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, root: str, test_fraction: float = 0.2, on_bad_image: str = "skip", **kw):
    if on_bad_image not in ("skip", "error"):
      raise ValueError(f"on_bad_image must be 'skip' or 'error', not {on_bad_image!r}.")
    self._root = root
    self._classes = folder_classes(root)
    self._test_fraction = test_fraction
    self._on_bad_image = on_bad_image
    self.skipped: list[tuple[str, str]] = []
    config = tfds.core.BuilderConfig(
      name=_folder_config_name(root, test_fraction), description=os.path.abspath(root)
    )
    super().__init__(config=config, **kw)

  def _info(self):
    return tfds.core.DatasetInfo(
      builder=self,
      description=f"Image folder {os.path.abspath(self._root)}",
      features=tfds.features.FeaturesDict(
        {
          "image_bytes": tfds.features.Tensor(shape=(), dtype=np.object_),
          "label": tfds.features.ClassLabel(names=self._classes),
          "path": tfds.features.Tensor(shape=(), dtype=np.object_),
        }
      ),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    files = {"train": [], "test": []}
    for label, name in enumerate(self._classes):
      folder = os.path.join(self._root, name)
      for fname in sorted(os.listdir(folder)):
        if not fname.lower().endswith(IMAGE_EXTENSIONS):
          continue
        rel = os.path.join(name, fname)
        bucket = int(hashlib.md5(rel.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        files["test" if bucket < self._test_fraction else "train"].append((rel, label))
    return {split: self._generate_examples(items) for split, items in files.items()}

  def _generate_examples(self, items):
    for rel, label in items:
      path = os.path.join(self._root, rel)
      problem = check_image(path)
      if problem is not None:
        if self._on_bad_image == "error":
          raise ValueError(
            f"cannot decode image {path}: {problem}. Delete or fix the file, or pass "
            "--config.data.on_bad_image=skip to skip unreadable files."
          )
        self.skipped.append((path, problem))
        continue
      with open(path, "rb") as f:
        data = f.read()
      yield rel, {"image_bytes": data, "label": label, "path": rel.encode()}


def decode_image(data: bytes, size: tuple[int, int] | None, channels: int = 3) -> np.ndarray:
  """Decodes image bytes to ``uint8 [H, W, C]``, resized to ``size`` (H, W) if given."""
  with Image.open(io.BytesIO(data)) as image:
    image = image.convert("RGB" if channels == 3 else "L")
    if size is not None and image.size != (size[1], size[0]):
      image = image.resize((size[1], size[0]), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
  return array if array.ndim == 3 else array[..., None]
