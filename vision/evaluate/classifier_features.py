"""Features and predictions of a classifier trained by this project, for generative metrics.

The Fréchet distance of a generative model is only as meaningful as the
features it is computed in. For 28x28 grey images the project's own
Fashion-MNIST CNN (``experiments/cnn_fashion_mnist.py``, ~92% test accuracy)
is a better-matched extractor than an ImageNet network fed upsampled
thumbnails, and it also classifies the samples, which exposes mode collapse.

``load_classifier(spec, overrides)`` trains that config once with the
foundation's loop into ``~/.cache/vision/classifiers/<config hash>/`` (or
``$VISION_CLASSIFIER_CACHE`` / an explicit ``cache_root``) and restores it from
there afterwards; the hash covers the whole config, so a changed config trains
a new classifier instead of silently reusing the wrong one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from vision import configs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Run-time fields that do not change the trained weights.
_NOT_HASHED = ("progress", "log_every", "keep_checkpoints", "checkpoint_every", "data_dir")


def default_cache_root() -> str:
  return os.environ.get(
    "VISION_CLASSIFIER_CACHE", os.path.expanduser("~/.cache/vision/classifiers")
  )


def resolve_spec(spec: str) -> str:
  """Config paths are relative to the working directory, else to the repository root."""
  path, arg = configs.split_spec(spec)
  if not os.path.isfile(path) and os.path.isfile(os.path.join(REPO_ROOT, path)):
    path = os.path.join(REPO_ROOT, path)
  return path if arg is None else f"{path}:{arg}"


def config_hash(config) -> str:
  flat = configs.flatten(json.loads(json.dumps(configs.to_dict(config))))
  kept = {k: v for k, v in flat.items() if k.split(".")[-1] not in _NOT_HASHED}
  return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


class ClassifierFeatures:
  """A trained classifier as a batched feature extractor: uint8 images -> (features, logits)."""

  def __init__(self, task, state, config, workdir: str, feature_name: str = "pre_logits"):
    self.task, self.config, self.workdir = task, config, workdir
    self.class_names = task.class_names
    self.num_classes = task.num_classes
    self.variables = {"params": state.params, "batch_stats": state.batch_stats}
    self.feature_name = feature_name
    with open(os.path.join(workdir, "results.json")) as f:
      self.results = json.load(f)

    from vision.data import augment

    def apply(variables, images):
      images = augment.eval_preprocess(images, config.aug)
      logits, features = task.model.apply(variables, images, train=False)
      feats = features[feature_name]
      return feats.reshape(feats.shape[0], -1).astype(jnp.float32), logits.astype(jnp.float32)

    self._apply = jax.jit(apply)

  @property
  def test_accuracy(self) -> float:
    return float(self.results.get("test_accuracy", float("nan")))

  def __call__(self, images, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, H, W, C] -> (features [N, D] float64, logits [N, K] float32)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
      raise TypeError(f"pass uint8 images (as saved and shown), got {images.dtype}.")
    feats, logits = [], []
    for start in range(0, len(images), batch_size):
      chunk = images[start : start + batch_size]
      n = len(chunk)
      if n < batch_size:  # pad to one compiled shape
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - n, 0)])
      f, lg = jax.device_get(self._apply(self.variables, chunk))
      feats.append(np.asarray(f[:n], np.float64))
      logits.append(np.asarray(lg[:n]))
    return np.concatenate(feats), np.concatenate(logits)


def _train(config, final_dir: str) -> None:
  """Trains into ``<final_dir>.partial`` and renames it when finished, under a file lock.

  The lock makes a second process wait for the first instead of training the same
  classifier twice (it is released if the trainer dies); the partial folder keeps
  the loop's checkpoints, so a killed training resumes instead of starting over;
  the rename means a finished folder is never half-written.
  """
  import fcntl

  from vision.train import loop

  os.makedirs(os.path.dirname(final_dir), exist_ok=True)
  with open(final_dir + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if os.path.exists(os.path.join(final_dir, "results.json")):
      return  # another process trained it while this one waited
    partial = final_dir + ".partial"
    print(f"[vision] training the feature classifier once into {final_dir}", flush=True)
    loop.run(config, partial)
    if os.path.exists(final_dir):  # a leftover without results.json
      shutil.rmtree(final_dir)
    os.rename(partial, final_dir)


def load_classifier(
  spec: str = "experiments/cnn_fashion_mnist.py",
  overrides=(),
  cache_root: str | None = None,
  workdir: str | None = None,
  feature_name: str = "pre_logits",
) -> ClassifierFeatures:
  """The classifier of config ``spec`` (+ overrides), trained once and cached.

  ``workdir``: use (or train into) exactly this folder instead of the hashed cache.
  """
  from vision.data.sources import load_split
  from vision.train import loop
  from vision.train.checkpoint import Checkpointer

  config = configs.load_config(resolve_spec(spec), list(overrides))
  if workdir is None:
    workdir = os.path.join(
      cache_root or default_cache_root(),
      f"{config.model.name}_{config.data.name}_{config_hash(config)}",
    )
  workdir = os.path.abspath(workdir)
  if not os.path.exists(os.path.join(workdir, "results.json")):
    _train(config, workdir)

  train = load_split(config.data, config.data.train_split)
  task = loop.build_task(config, {"train": train})
  task.num_steps = 1  # only the optimizer's structure matters for restoring
  sample = {"image": np.zeros((1, *train.image_shape), np.uint8), "label": np.zeros(1, np.int32)}
  state = task.init(jax.random.key(0), sample)
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
  state = checkpointer.restore(state)
  checkpointer.close()
  if getattr(task, "patience", 0) and float(state.extra["best_accuracy"]) >= 0:
    state = state.replace(
      params=state.extra["best_params"], batch_stats=state.extra["best_batch_stats"]
    )
  return ClassifierFeatures(task, state, config, workdir, feature_name)
