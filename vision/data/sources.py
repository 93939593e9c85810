"""Datasets by name: offline builders, image folders and the TFDS catalog.

``load_split(data_config, split)`` returns a :class:`Split`: a random-access
record reader plus the labels and metadata, read through ``tfds.data_source``
(array_record files, no TensorFlow). Small fixed-size datasets are read into
memory once per process, so batches are a numpy gather.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
from collections.abc import Callable

import numpy as np
from PIL import Image

from vision.errors import DatasetError  # noqa: F401

# Datasets built here from files that ship with Debian/PyPI packages: name -> builder
# class name in vision.data.builders (imported, with tensorflow_datasets, only when a
# dataset is loaded, so that models and steps import without it).
OFFLINE_BUILDERS = {"fashion_mnist": "FashionMnistOffline", "digits": "SklearnDigits"}
# Above this many bytes a fixed-size split is read lazily instead of into memory.
IN_MEMORY_LIMIT = 4 << 30


@dataclasses.dataclass
class Split:
  """One split of a dataset, ready for batching.

  ``read(indices) -> {'image': uint8 [N, H, W, C], 'label': int32 [N]}`` reads
  records by position within the split; ``labels`` holds all labels so
  subsets (few-shot, per class) can be chosen without reading images.
  """

  name: str
  split: str
  num_classes: int
  class_names: list[str]
  labels: np.ndarray
  read: Callable[[np.ndarray], dict[str, np.ndarray]]
  image_shape: tuple[int, int, int]
  skipped_files: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  def __len__(self) -> int:
    return len(self.labels)

  def subset(self, indices: np.ndarray) -> Split:
    indices = np.asarray(indices)
    parent_read = self.read
    return dataclasses.replace(
      self, labels=self.labels[indices], read=lambda idx: parent_read(indices[np.asarray(idx)])
    )

  def per_class(self, count: int, seed: int) -> Split:
    """The first ``count`` examples of each class in a seeded shuffle (few-shot subsets)."""
    order = np.random.default_rng(seed).permutation(len(self.labels))
    chosen = []
    for c in range(self.num_classes):
      members = order[self.labels[order] == c][:count]
      if len(members) < count:
        raise DatasetError(
          f"{self.name}:{self.split} has only {len(members)} examples of class {c}; "
          f"cannot take per_class={count}."
        )
      chosen.append(members)
    return self.subset(np.sort(np.concatenate(chosen)))


_CACHE: dict[tuple, Split] = {}


def default_data_dir() -> str:
  return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def _prepared_builder(cls, data_dir: str, **kwargs):
  import tensorflow_datasets as tfds

  builder = cls(data_dir=data_dir, file_format="array_record", **kwargs)
  if not builder.is_prepared():
    with _prepare_lock(data_dir, builder.name):
      # A fresh builder: another process may have prepared the dataset meanwhile.
      builder = cls(data_dir=data_dir, file_format="array_record", **kwargs)
      if not builder.is_prepared():
        print(f"[vision] preparing {builder.name} in {data_dir} (once)", flush=True)
        tfds.disable_progress_bar()
        try:
          builder.download_and_prepare()
        except FileNotFoundError as e:
          raise DatasetError(str(e)) from e
  return builder


@contextlib.contextmanager
def _prepare_lock(data_dir: str, name: str):
  """A file lock around preparing ``name``: the processes of one multi-process run, or runs
  started side by side, prepare it once instead of racing for the same folder."""
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, f".{name}.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def _catalog_builder(name: str, data_dir: str):
  """A prepared TFDS catalog dataset, or an error saying how to prepare it."""
  import tensorflow_datasets as tfds

  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DatasetError(
      f"unknown dataset {name!r}. Offline datasets: {', '.join(sorted(OFFLINE_BUILDERS))}, "
      "'image_folder' (with data.root=PATH); or any TFDS catalog name such as mnist, "
      "cats_vs_dogs, oxford_iiit_pet, cifar10."
    ) from e
  if not builder.is_prepared():
    raise DatasetError(
      f"dataset {name!r} is not prepared in {data_dir}. On a machine with internet run "
      f"`tfds build {name} --file_format=array_record --data_dir {data_dir}` (or in Python: "
      f"tfds.builder({name!r}, data_dir=..., file_format='array_record')"
      ".download_and_prepare()) and copy the folder "
      f"{os.path.join(data_dir, name)} here; set --config.data.data_dir or TFDS_DATA_DIR "
      "if it lives elsewhere."
    )
  return builder


def _image_key(features) -> str:
  for key in ("image", "image_bytes"):
    if key in features:
      return key
  raise DatasetError(f"dataset has no 'image' feature; features: {list(features)}")


def load_split(data_config, split: str) -> Split:
  """Loads ``split`` (TFDS split syntax, e.g. ``'train[:90%]'``) of ``data_config.name``."""
  name = data_config.name
  data_dir = data_config.get("data_dir") or default_data_dir()
  size = data_config.get("image_size")
  size = tuple(size) if size else None
  root = data_config.get("root")
  key = (name, split, data_dir, size, root, data_config.get("on_bad_image", "skip"))
  if key in _CACHE:
    return _CACHE[key]

  import tensorflow_datasets as tfds

  from vision.data import builders

  skipped: list[tuple[str, str]] = []
  if name in OFFLINE_BUILDERS:
    builder = _prepared_builder(getattr(builders, OFFLINE_BUILDERS[name]), data_dir)
  elif name == "image_folder":
    if not root:
      raise DatasetError("data.name='image_folder' needs --config.data.root=PATH/TO/FOLDER.")
    try:
      builder = builders.ImageFolder(
        root=root,
        on_bad_image=data_config.get("on_bad_image", "skip"),
        data_dir=data_dir,
        file_format="array_record",
      )
    except (FileNotFoundError, ValueError) as e:
      raise DatasetError(str(e)) from e
    if not builder.is_prepared():
      with _prepare_lock(data_dir, builder.name):
        builder = builders.ImageFolder(
          root=root,
          on_bad_image=data_config.get("on_bad_image", "skip"),
          data_dir=data_dir,
          file_format="array_record",
        )  # afresh: another process may have prepared it meanwhile
        if not builder.is_prepared():
          print(f"[vision] preparing image folder {root} in {data_dir} (once)", flush=True)
          tfds.disable_progress_bar()
          try:
            builder.download_and_prepare()
          except ValueError as e:  # an unreadable image under on_bad_image='error'
            raise DatasetError(" ".join(str(e).split())) from e
          except AssertionError as e:  # TFDS: a split that no file falls into
            raise DatasetError(
              f"image folder {root!r}: {' '.join(str(e).split())}; give each class sub-folder "
              "JPEG or PNG files, enough that some fall into the test split (about a fifth)."
            ) from e
          skipped = builder.skipped
      if skipped:
        logging.warning(
          "skipped %d unreadable image(s) in %s, e.g. %s (%s)", len(skipped), root, *skipped[0]
        )
  else:
    builder = _catalog_builder(name, data_dir)

  try:
    source = builder.as_data_source(split=split)
  except ValueError as e:
    raise DatasetError(
      f"{name}: bad split {split!r} ({e}); splits: {', '.join(builder.info.splits)}."
    ) from e
  features = builder.info.features
  label_feature = features["label"]
  num_classes = label_feature.num_classes
  class_names = list(label_feature.names)
  image_key = _image_key(features)

  def _decode(record) -> np.ndarray:
    image = record[image_key]
    if isinstance(image, (bytes, np.bytes_)):
      return builders.decode_image(image, size, channels=3)
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    if size is not None and image.shape[:2] != size:
      pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
      image = np.asarray(pil.resize((size[1], size[0]), Image.BILINEAR), np.uint8)
      image = image if image.ndim == 3 else image[..., None]
    return image

  def read_records(indices) -> dict[str, np.ndarray]:
    records = source.__getitems__([int(i) for i in indices])
    return {
      "image": np.stack([_decode(r) for r in records]),
      "label": np.asarray([r["label"] for r in records], np.int32),
    }

  n = len(source)
  if n == 0:
    raise DatasetError(f"{name}:{split} is empty.")
  first = read_records([0])["image"][0]
  fixed = image_key == "image" and features[image_key].shape[0] is not None
  if fixed and n * first.nbytes <= IN_MEMORY_LIMIT:
    everything = read_records(np.arange(n))
    images, labels = everything["image"], everything["label"]
    read = lambda idx: {"image": images[idx], "label": labels[idx]}  # noqa: E731
  else:
    labels = np.asarray(
      [r["label"] for r in source.__getitems__(list(range(n)))]
      if image_key == "image"
      else [source[i]["label"] for i in range(n)],
      np.int32,
    )
    read = read_records

  result = Split(
    name=name,
    split=split,
    num_classes=num_classes,
    class_names=class_names,
    labels=labels,
    read=read,
    image_shape=tuple(first.shape),
    skipped_files=skipped,
  )
  _CACHE[key] = result
  return result
