"""Offline TFDS builders, image folders, catalog errors and grain pipelines."""

import glob
import hashlib
import os
import types

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tests.conftest import REAL_FASHION_MNIST, ROOT, write_idx
from vision import configs
from vision.data import augment, builders, pipeline
from vision.data.sources import DatasetError, load_split
from vision.train import loop


def data_config(**kw):
  base = dict(name="fashion_mnist", data_dir="", root="", image_size=(), on_bad_image="skip")
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_read_idx_roundtrip_and_truncation(tmp_path):
  array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  path = str(tmp_path / "x-idx3-ubyte.gz")
  write_idx(path, array)
  np.testing.assert_array_equal(builders.read_idx(path), array)
  raw = tmp_path / "bad-idx"
  raw.write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x01\x02")
  with pytest.raises(ValueError, match="truncated"):
    builders.read_idx(str(raw))


def test_fashion_mnist_splits(data_env):
  train = load_split(data_config(), "train[:300]")
  test = load_split(data_config(), "test")
  assert train.image_shape == (28, 28, 1) and train.num_classes == 10
  assert len(train) == 300
  assert len(test) in (10000, 500)  # real data, or the synthetic stand-in
  batch = train.read(np.array([0, 5, 7]))
  assert batch["image"].dtype == np.uint8 and batch["image"].shape == (3, 28, 28, 1)
  assert batch["label"].dtype == np.int32
  assert train.class_names[9] == "Ankle boot"


def test_missing_fashion_files_message(tmp_path, monkeypatch):
  monkeypatch.setenv("VISION_FASHION_MNIST_DIR", str(tmp_path / "empty"))
  with pytest.raises(DatasetError, match="apt-get install -y dataset-fashion-mnist"):
    load_split(data_config(data_dir=str(tmp_path / "tfds")), "train")


def test_digits(tmp_path):
  split = load_split(data_config(name="digits", data_dir=str(tmp_path)), "train")
  assert len(split) == 1500 and split.image_shape == (8, 8, 1)
  assert split.read(np.arange(4))["image"].max() > 100  # rescaled from 0..16


def test_catalog_dataset_not_prepared_says_how(tmp_path):
  with pytest.raises(DatasetError) as e:
    load_split(data_config(name="mnist", data_dir=str(tmp_path)), "train")
  assert "not prepared" in str(e.value) and "tfds build mnist --file_format=array_record" in str(
    e.value
  )


def test_unknown_dataset(tmp_path):
  with pytest.raises(DatasetError, match="unknown dataset 'no_such_set'"):
    load_split(data_config(name="no_such_set", data_dir=str(tmp_path)), "train")


def make_folder(root, corrupt=True):
  rng = np.random.default_rng(0)
  for cls, colour in (("cat", 200), ("dog", 40)):
    os.makedirs(root / cls)
    for i in range(12):
      image = np.full((20 + i, 30, 3), colour, np.uint8) + rng.integers(
        0, 20, (20 + i, 30, 3), dtype=np.uint8
      )
      Image.fromarray(image).save(root / cls / f"{i}.{'png' if i % 2 else 'jpg'}")
  if corrupt:
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
  (root / "cat" / "notes.txt").write_text("ignored: not an image")


def test_image_folder_skips_and_counts_bad_files(tmp_path):
  make_folder(tmp_path / "pets")
  config = data_config(
    name="image_folder",
    root=str(tmp_path / "pets"),
    image_size=(16, 16),
    data_dir=str(tmp_path / "tfds"),
  )
  train = load_split(config, "train")
  test = load_split(config, "test")
  assert len(train) + len(test) == 24  # the broken file and the .txt are not included
  assert [path for path, _ in train.skipped_files] == [
    str(tmp_path / "pets" / "dog" / "broken.jpg")
  ]
  assert train.class_names == ["cat", "dog"]
  batch = train.read(np.arange(len(train)))
  assert batch["image"].shape == (len(train), 16, 16, 3)
  cats = batch["image"][batch["label"] == 0].mean()
  dogs = batch["image"][batch["label"] == 1].mean()
  assert cats > dogs + 100  # labels follow the folders


def test_image_folder_error_mode_names_file(tmp_path):
  make_folder(tmp_path / "pets")
  config = data_config(
    name="image_folder",
    root=str(tmp_path / "pets"),
    image_size=(16, 16),
    data_dir=str(tmp_path / "tfds"),
    on_bad_image="error",
  )
  with pytest.raises(ValueError, match="broken.jpg"):
    load_split(config, "train[:5]")


def test_image_folder_missing(tmp_path):
  with pytest.raises(DatasetError, match="does not exist"):
    load_split(
      data_config(name="image_folder", root=str(tmp_path / "nope"), data_dir=str(tmp_path)), "train"
    )


def test_train_batches_are_seeded_and_resumable(data_env):
  split = load_split(data_config(), "train[:300]")
  full = [b["label"] for b in pipeline.train_batches(split, batch_size=32, num_steps=20, seed=3)]
  again = [b["label"] for b in pipeline.train_batches(split, batch_size=32, num_steps=20, seed=3)]
  resumed = [
    b["label"]
    for b in pipeline.train_batches(split, batch_size=32, num_steps=20, seed=3, start_step=13)
  ]
  other = [b["label"] for b in pipeline.train_batches(split, batch_size=32, num_steps=20, seed=4)]
  assert len(full) == 20
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(full[13:], resumed):
    np.testing.assert_array_equal(a, b)
  assert not all(np.array_equal(a, b) for a, b in zip(full, other))
  # One epoch (9 batches of 32 from 300) visits distinct examples.
  first_epoch = [b for b in pipeline.train_batches(split, batch_size=100, num_steps=3, seed=0)]
  assert sum(len(b["label"]) for b in first_epoch) == 300


def test_eval_batches_cover_split_once_with_mask(data_env):
  split = load_split(data_config(), "train[:70]")
  batches = list(pipeline.eval_batches(split, batch_size=32))
  assert [len(b["mask"]) for b in batches] == [32, 32, 32]
  assert sum(b["mask"].sum() for b in batches) == 70


def test_per_class_subset(data_env):
  split = load_split(data_config(), "train[:2000]").per_class(5, seed=0)
  assert len(split) == 50
  assert np.bincount(split.labels, minlength=10).tolist() == [5] * 10
  assert np.array_equal(split.read(np.arange(50))["label"], split.labels)


def test_augment_shapes_and_ranges():
  import jax

  images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
  aug = ml_collections.ConfigDict(
    dict(size=32, crop_padding=2, flip=True, random_resized_crop=False)
  )
  out = augment.train_preprocess(jax.random.key(0), images, aug)
  assert out.shape == (4, 32, 32, 1) and float(out.min()) >= 0 and float(out.max()) <= 1
  flipped = augment.random_flip(jax.random.key(1), np.arange(6.0).reshape(1, 1, 6, 1))
  assert sorted(np.asarray(flipped).ravel().tolist()) == list(range(6))
  crop = augment.random_resized_crop(jax.random.key(2), augment.to_float(images), 24)
  assert crop.shape == (4, 24, 24, 1)


def test_mixup_mixes_pairs_of_images_and_targets_with_one_weight():
  import jax

  rng = np.random.default_rng(0)
  images = rng.random((8, 5, 5, 3), dtype=np.float32)
  labels = np.arange(8)  # distinct, so each target row names the partner
  targets = np.eye(8, dtype=np.float32)
  same = augment.mixup(jax.random.key(0), images, targets, 0.0)
  assert same[0] is images and same[1] is targets
  for seed in range(3):
    mixed, mixed_targets = map(
      np.asarray, augment.mixup(jax.random.key(seed), images, targets, 0.4)
    )
    np.testing.assert_allclose(mixed_targets.sum(-1), 1.0, rtol=1e-6)
    lam = mixed_targets[labels, labels]  # the weight of each example's own label
    partner = np.argmax(np.where(np.eye(8) > 0, -1.0, mixed_targets), -1)
    own = lam == 1.0  # paired with itself
    partner = np.where(own, labels, partner)
    assert len(set(partner.tolist())) == 8  # a permutation of the batch
    # One weight for the whole batch (self-pairs are unchanged whatever it is).
    assert np.allclose(lam[~own], lam[~own][0], atol=1e-6)
    expected = lam[:, None, None, None] * images + (1 - lam)[:, None, None, None] * images[partner]
    np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-6)


# -- the splits the experiments use are disjoint ---------------------------------------------------
FASHION_MNIST_SIZES = {"train": 60000, "test": 10000}
SPLIT_ROLES = ("train_split", "val_split", "test_split")


def fashion_mnist_configs():
  """``(spec, config)`` of every experiment config on Fashion-MNIST: each file as it is and
  with each of its size variants (small, tiny)."""
  for path in sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py"))):
    if os.path.basename(path) in ("__init__.py", "common.py"):
      continue
    module = configs.load_module(path)
    variants = getattr(module, "VARIANTS", ())
    for arg in (None, *(size for size in ("small", "tiny") if size in variants)):
      spec = os.path.relpath(path, ROOT) + (f":{arg}" if arg else "")
      config = configs.load_config(spec)
      if "data" in config and config.data.name == "fashion_mnist":
        yield spec, config


def example_ranges(spec: str) -> list[tuple[str, int, int]]:
  """``(split name, from, to)`` of the examples a TFDS split spec reads from Fashion-MNIST."""
  infos = {name: types.SimpleNamespace(num_examples=n) for name, n in FASHION_MNIST_SIZES.items()}
  ranges = tfds.core.ReadInstruction.from_spec(spec).to_absolute(infos)
  return [
    (r.splitname, r.from_ or 0, FASHION_MNIST_SIZES[r.splitname] if r.to is None else r.to)
    for r in ranges
  ]


def test_every_config_reads_disjoint_train_val_and_test_examples():
  checked = []
  for spec, config in fashion_mnist_configs():
    roles = {
      role: example_ranges(config.data[role]) for role in SPLIT_ROLES if config.data.get(role)
    }
    assert "train_split" in roles and "test_split" in roles, spec
    for i, first in enumerate(roles):
      for second in list(roles)[i + 1 :]:
        for name, lo, hi in roles[first]:
          for other, lo2, hi2 in roles[second]:
            assert name != other or hi <= lo2 or hi2 <= lo, (
              f"{spec}: {first} {config.data[first]!r} and {second} "
              f"{config.data[second]!r} share examples {name}[{max(lo, lo2)}:{min(hi, hi2)}]"
            )
    checked.append(spec)
  # Every training config on Fashion-MNIST, with its small and tiny variants.
  assert {"experiments/cnn_fashion_mnist.py", "experiments/cnn_fashion_mnist.py:tiny"} <= set(
    checked
  )
  assert len(checked) >= 20, checked


def image_digests(split) -> list[bytes]:
  images = split.read(np.arange(len(split)))["image"]
  return [hashlib.sha1(image.tobytes()).digest() for image in images]


def test_default_splits_share_no_image(data_env):
  """The splits of the default configs, as loaded: no image of validation or test is also a
  training image (compared by content, which also catches a split read from the wrong file)."""
  splits = loop.load_splits(configs.load_config("experiments/cnn_fashion_mnist.py"))
  assert set(splits) == {"train", "val", "test"}
  digests = {role: image_digests(split) for role, split in splits.items()}
  total = sum(len(d) for d in digests.values())
  if os.path.exists(os.path.join(REAL_FASHION_MNIST, "t10k-labels-idx1-ubyte.gz")):
    assert total == 70000
  seen = {role: set(d) for role, d in digests.items()}
  for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
    shared = seen[first] & seen[second]
    assert not shared, f"{len(shared)} images are in both {first} and {second}"
