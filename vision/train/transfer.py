"""Transfer learning from ImageNet backbones: linear probe, head training, fine-tuning.

``build(config, splits, num_steps)`` returns the :class:`Task`;
``config.transfer.mode`` selects

* ``probe``: the frozen backbone's pooled features are extracted once (cached
  on disk, :func:`extract_features`) and a linear classifier is trained on
  them; the task's ``splits`` are those feature splits;
* ``head``: a new zero-initialized head trained end to end through the frozen
  backbone, batch norm in inference mode;
* ``finetune``: the head and the last ``transfer.train_last_n`` stages
  (-1: all) are trained, the backbone at ``transfer.backbone_lr_scale`` times
  the head's learning rate (optax ``multi_transform``); its batch norm is
  frozen or trained by ``transfer.bn_train``;
* ``scratch``: the same model family (or the project's CNN) from random weights,
  the baseline that transfer must beat.

Only trainable parameters are differentiated and carried by the optimizer, so
frozen ones stay bit-identical and cost no backward pass. Evaluation, early
stopping and the report are those of :mod:`vision.train.classification`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from tqdm.auto import tqdm

from vision.data import augment
from vision.data.sources import Split
from vision.errors import ConfigError
from vision.evaluate.batched import batched_apply
from vision.models.backbones import stage_mask
from vision.train import classification
from vision.train.optim import make_optimizer
from vision.train.state import TrainState, apply_updates
from vision.train.task import Task
from vision.weights import load_pretrained

MODES = ("probe", "head", "finetune", "scratch")


class LinearProbe(nn.Module):
  """A linear classifier on cached features (zero-initialized, as new heads are)."""

  num_classes: int

  @nn.compact
  def __call__(self, features, *, train: bool = False):
    del train
    logits = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, name="head")(features)
    return logits, {"pre_logits": features}


def _flat(tree):
  return traverse_util.flatten_dict(tree) if tree else {}


def load_backbone(config, num_classes: int | None) -> tuple[nn.Module, dict]:
  """``(model, variables)`` of the pretrained ``config.model`` with a new ``num_classes`` head
  (None: no head, the model returns pooled features)."""
  return load_pretrained(
    config.model.name,
    config.model.weights or None,
    num_classes=num_classes,
    dtype=jnp.dtype(config.model.dtype),
    rng=jax.random.key(config.seed),
    **dict(config.model.get("kwargs", {}) or {}),
  )


# -- features for the linear probe ----------------------------------------------------------------
def features_cache_dir() -> str:
  root = os.environ.get("VISION_CACHE_DIR", os.path.expanduser("~/.cache/vision"))
  return os.path.join(root, "features")


def features_key(config, split: Split, role: str = "train") -> str:
  """What the features of ``split`` depend on: the backbone and its weights, the examples, the
  preprocessing."""
  weights = config.model.weights
  stamp = ""
  if weights and os.path.exists(weights):
    stat = os.stat(weights)
    stamp = f"{stat.st_size}-{int(stat.st_mtime)}"
  labels_digest = hashlib.sha1(split.labels.tobytes()).hexdigest()[:12]
  key = json.dumps(
    [
      config.model.name,
      weights,
      stamp,
      split.name,
      split.split,
      len(split),
      labels_digest,
      # Only the training split is subset (loop.load_splits), so validation and
      # test features are shared by runs with different data.per_class.
      config.data.get("per_class", 0) if role == "train" else 0,
      config.seed if role == "train" else 0,
      config.aug.get("size", 0),
      config.data.get("data_dir", ""),
      config.data.get("root", ""),
      config.model.dtype,
    ]
  )
  return hashlib.sha1(key.encode()).hexdigest()[:20]


def compute_features(config, backbone: nn.Module, variables, split: Split, role: str) -> np.ndarray:
  """Pooled features [N, D] float32 of every example of ``split`` (no cache)."""

  @jax.jit
  def embed(images):
    features, _ = backbone.apply(
      variables, augment.eval_preprocess(images, config.aug), train=False
    )
    return features

  batch_size = config.get("feature_batch_size", 256)
  with tqdm(
    total=-(-len(split) // batch_size),
    desc=f"features {role}",
    leave=False,
    disable=not config.get("progress", True),
  ) as bar:

    def embed_batch(batch):
      features = embed(split.read(batch["index"])["image"])
      bar.update(1)
      return {"features": features}

    features = batched_apply(embed_batch, {"index": np.arange(len(split))}, batch_size)
  return features["features"].astype(np.float32)


def extract_features(config, backbone: nn.Module, variables, split: Split, role: str) -> np.ndarray:
  """:func:`compute_features`, cached on disk under :func:`features_key`."""
  path = os.path.join(features_cache_dir(), f"{features_key(config, split, role)}.npy")
  if os.path.exists(path):
    return np.load(path)
  features = compute_features(config, backbone, variables, split, role)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}.npy"  # atomic: concurrent runs may share the cache
  np.save(tmp, features)
  os.replace(tmp, path)
  return features


def feature_splits(config, backbone, variables, splits: Mapping[str, Split]) -> dict[str, Split]:
  """New splits whose 'image' is the backbone's feature vector of each example."""
  result = {}
  for role, split in splits.items():
    features = extract_features(config, backbone, variables, split, role)
    result[role] = Split(
      name=split.name,
      split=split.split,
      num_classes=split.num_classes,
      class_names=split.class_names,
      labels=split.labels,
      read=lambda idx, f=features, y=split.labels: {"image": f[idx], "label": y[idx]},
      image_shape=features.shape[1:],
    )
  return result


# -- the task -------------------------------------------------------------------------------------
def build(config, splits: Mapping[str, Split], num_steps: int) -> Task:
  mode = config.transfer.mode
  if mode not in MODES:
    raise ConfigError(f"unknown transfer.mode {mode!r}; choose one of {', '.join(MODES)}.")
  num_classes = splits["train"].num_classes
  patience = config.get("early_stopping_patience", 0) or 0
  backbone = pretrained = None
  if mode == "scratch":
    model = classification.make_model(config.scratch_model, num_classes)
  else:
    backbone, pretrained = load_backbone(config, None if mode == "probe" else num_classes)
    model = LinearProbe(num_classes) if mode == "probe" else backbone
  train_splits = splits
  feature_seconds = None
  if mode == "probe":
    start = time.perf_counter()
    train_splits = feature_splits(config, backbone, pretrained, splits)
    # Near 0 when every split came from the cache.
    feature_seconds = time.perf_counter() - start

  def trainable_labels(params) -> dict:
    """'head' / 'backbone' / 'frozen' for every parameter leaf (a flat dict)."""
    flat = _flat(params)
    if mode in ("probe", "scratch"):
      return {k: "head" for k in flat}
    layout = backbone.stage_layout()
    head_names = {n for stage, names in layout if stage == "head" for n in names}
    body_stages = [s for s in layout if s[0] != "head"]
    last_n = 0
    if mode == "finetune":
      last_n = config.transfer.train_last_n
      last_n = len(body_stages) if last_n < 0 else min(last_n, len(body_stages))
    mask = _flat(stage_mask(params, backbone, last_n, include_head=True))
    return {
      k: ("head" if k[0] in head_names else "backbone") if mask[k] else "frozen" for k in flat
    }

  def preprocess_train(rng, images):
    if mode == "probe":
      return images.astype(jnp.float32)
    return augment.train_preprocess(rng, images, config.aug)

  def preprocess_eval(images):
    if mode == "probe":
      return images.astype(jnp.float32)
    return augment.eval_preprocess(images, config.aug)

  def make_tx(labels_tree):
    optim = config.optim
    scaled = optim.copy_and_resolve_references()
    with scaled.unlocked():
      scaled.learning_rate = optim.learning_rate * config.transfer.backbone_lr_scale
    return optax.multi_transform(
      {"head": make_optimizer(optim, num_steps), "backbone": make_optimizer(scaled, num_steps)},
      labels_tree,
    )

  def init(rng, batch):
    if mode in ("probe", "scratch"):
      images = preprocess_eval(batch["image"][:1])
      variables = jax.jit(lambda r, x: model.init({"params": r, "dropout": r}, x, train=False))(
        rng, images
      )
    else:
      variables = pretrained
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    labels = trainable_labels(params)
    trainable = traverse_util.unflatten_dict(
      {k: v for k, v in _flat(params).items() if labels[k] != "frozen"}
    )
    labels_tree = traverse_util.unflatten_dict({k: v for k, v in labels.items() if v != "frozen"})
    tx = make_tx(labels_tree)
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=tx.init(trainable),
      batch_stats=batch_stats,
      extra=classification.early_stopping_extra(patience, params, batch_stats),
      tx=tx,
    )

  def trainable_params(state):
    labels = trainable_labels(state.params)
    return {k: v for k, v in _flat(state.params).items() if labels[k] != "frozen"}

  bn_train = mode == "scratch" or (mode == "finetune" and config.transfer.bn_train)

  def train_step(state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    aug_rng, dropout_rng, mix_rng = jax.random.split(rng, 3)
    images = preprocess_train(aug_rng, batch["image"])
    labels_of = trainable_labels(state.params)
    flat = _flat(state.params)
    trainable = traverse_util.unflatten_dict(
      {k: v for k, v in flat.items() if labels_of[k] != "frozen"}
    )
    frozen = {k: v for k, v in flat.items() if labels_of[k] == "frozen"}
    targets = optax.smooth_labels(
      jax.nn.one_hot(batch["label"], num_classes), config.get("label_smoothing", 0.0)
    )
    images, targets = augment.mixup(mix_rng, images, targets, config.aug.get("mixup", 0.0))

    def loss_fn(trainable):
      params = traverse_util.unflatten_dict({**frozen, **_flat(trainable)})
      variables = {"params": params, "batch_stats": state.batch_stats}
      if bn_train:
        (logits, _), updates = model.apply(
          variables, images, train=True, rngs={"dropout": dropout_rng}, mutable=["batch_stats"]
        )
        new_stats = updates.get("batch_stats", state.batch_stats)
      else:
        logits, _ = model.apply(variables, images, train=False)
        new_stats = state.batch_stats
      logits = logits.astype(jnp.float32)
      return optax.softmax_cross_entropy(logits, targets).mean(), (logits, new_stats)

    (loss, (logits, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    if bn_train and mode == "finetune":
      # Only the batch statistics of trained stages move; frozen stages keep theirs.
      # Statistics belong to the top-level module (stage) their parameters name.
      trained = {k[0] for k, v in labels_of.items() if v != "frozen"}
      old, new = _flat(state.batch_stats), _flat(new_stats)
      new_stats = traverse_util.unflatten_dict(
        {k: new[k] if k[0] in trained else v for k, v in old.items()}
      )
    trainable, opt_state = apply_updates(state.tx, grads, state.opt_state, trainable)
    params = traverse_util.unflatten_dict({**frozen, **_flat(trainable)})
    state = state.replace(
      step=state.step + 1, params=params, opt_state=opt_state, batch_stats=new_stats
    )
    metrics = {
      "loss": loss,
      # Against the dominant label of each (mixed) target; the label itself without mixup.
      "accuracy": jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(targets, -1)),
      "grad_norm": optax.global_norm(grads),
    }
    return state, metrics

  def predict(state, images):
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    logits, _ = model.apply(variables, preprocess_eval(images), train=False)
    return logits.astype(jnp.float32)

  def eval_step(state, batch):
    return classification.eval_sums(
      predict(state, batch["image"]), batch["label"], batch["mask"], num_classes
    )

  classification_report = classification.make_report(
    predict, config.batch_size, splits["train"].class_names, splits
  )

  def report(state, ctx) -> dict[str, float]:
    results = classification_report(state, ctx)
    flat = _flat(state.params)
    trained = sum(int(v.size) for v in trainable_params(state).values())
    results["params_trained"] = float(trained)
    results["params_frozen"] = float(sum(int(v.size) for v in flat.values()) - trained)
    if feature_seconds is not None:
      results["feature_seconds"] = round(feature_seconds, 2)
    return results

  after_eval, should_stop = classification.early_stopping(patience)
  return Task(
    init=init,
    train_step=train_step,
    eval_step=eval_step,
    report=report,
    splits=train_splits,
    summarize_eval=classification.summarize_eval,
    after_eval=after_eval,
    should_stop=should_stop,
    trainable_params=trainable_params,
  )
