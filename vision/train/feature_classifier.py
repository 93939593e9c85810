"""The feature classifier of generative metrics, trained once by the training loop and cached.

``load_or_train(spec, overrides)`` trains the classification config ``spec``
(+ overrides) once with :func:`vision.train.loop.run` into
``~/.cache/vision/classifiers/<model>_<data>_<config hash>/`` (or
``$VISION_CLASSIFIER_CACHE`` / ``cache_root`` / an explicit ``workdir``) and
restores it from there afterwards, as a
:class:`vision.evaluate.classifier_features.ClassifierFeatures`. The hash
covers the whole config, so a changed config trains a new classifier instead of
silently reusing the wrong one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil

import jax
import numpy as np

from vision import configs
from vision.data import augment
from vision.data.sources import load_split
from vision.errors import ConfigError
from vision.evaluate.classifier_features import ClassifierFeatures
from vision.train import classification, loop
from vision.train.checkpoint import Checkpointer

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


def _train(config, spec: str, final_dir: str) -> None:
  """Trains into ``<final_dir>.partial`` and renames it when finished, under a file lock.

  The lock makes a second process wait for the first instead of training the same
  classifier twice (it is released if the trainer dies); the partial folder keeps
  the loop's checkpoints, so a killed training resumes instead of starting over;
  the rename means a finished folder is never half-written.
  """
  os.makedirs(os.path.dirname(final_dir), exist_ok=True)
  with open(final_dir + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if os.path.exists(os.path.join(final_dir, "results.json")):
      return  # another process trained it while this one waited
    print(
      f"[vision] training the feature classifier {spec} once into {final_dir} "
      "(cached for later runs)",
      flush=True,
    )
    partial = final_dir + ".partial"
    loop.run(config, partial)
    if os.path.exists(final_dir):  # a leftover without results.json
      shutil.rmtree(final_dir)
    os.rename(partial, final_dir)


def _train_together(config, spec: str, final_dir: str) -> None:
  """:func:`_train` for a multi-process run, whose processes all take part in the training.

  No file lock (the process holding it would wait for the others in the loop's
  collectives while they wait for the lock): process 0 decides whether the
  classifier still needs training, every process trains, process 0 renames the
  folder, and a barrier keeps the others from reading it before that.
  """
  from jax.experimental import multihost_utils

  done = os.path.exists(os.path.join(final_dir, "results.json"))
  if not int(multihost_utils.broadcast_one_to_all(np.int32(done))):
    if jax.process_index() == 0:
      print(f"[vision] training the feature classifier {spec} once into {final_dir}", flush=True)
    partial = final_dir + ".partial"
    loop.run(config, partial)
    multihost_utils.sync_global_devices(f"trained {final_dir}")
    if jax.process_index() == 0:
      if os.path.exists(final_dir):
        shutil.rmtree(final_dir)
      os.rename(partial, final_dir)
  multihost_utils.sync_global_devices(f"ready {final_dir}")


def load_or_train(
  spec: str = "experiments/cnn_fashion_mnist.py",
  overrides=(),
  workdir: str | None = None,
  *,
  cache_root: str | None = None,
  feature_name: str = "pre_logits",
) -> ClassifierFeatures:
  """The classifier of config ``spec`` (+ ``overrides``), trained once and cached.

  ``workdir``: use (or train into) exactly this folder instead of the hashed
  cache under ``cache_root`` (default :func:`default_cache_root`).
  """
  config = configs.load_config(resolve_spec(spec), list(overrides))
  if config.task != "classification":
    raise ConfigError(
      f"the feature classifier {spec} has task {config.task!r}; it must be a "
      "'classification' config."
    )
  if workdir is None:
    workdir = os.path.join(
      cache_root or default_cache_root(),
      f"{config.model.name}_{config.data.name}_{config_hash(config)}",
    )
  workdir = os.path.abspath(workdir)
  if jax.process_count() > 1:
    _train_together(config, spec, workdir)
  elif not os.path.exists(os.path.join(workdir, "results.json")):
    _train(config, spec, workdir)

  train = load_split(config.data, config.data.train_split)
  # Only the state's structure matters for restoring (num_steps shapes no array).
  task = classification.build(config, {"train": train}, num_steps=1)
  sample = {"image": np.zeros((1, *train.image_shape), np.uint8), "label": np.zeros(1, np.int32)}
  state = task.init(jax.random.key(0), sample)
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
  state = classification.selected(checkpointer.restore(state))
  checkpointer.close()
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  return ClassifierFeatures(
    classification.make_model(config.model, train.num_classes),
    {"params": state.params, "batch_stats": state.batch_stats},
    lambda images: augment.eval_preprocess(images, config.aug),
    train.class_names,
    feature_name=feature_name,
    results=results,
    config=config,
    workdir=workdir,
  )
