"""Transfer learning from ImageNet backbones: linear probe, head training, fine-tuning.

``config.transfer.mode`` selects

* ``probe``: the frozen backbone's pooled features are extracted once (cached
  on disk) and a linear classifier is trained on them;
* ``head``: a new zero-initialized head trained end to end through the frozen
  backbone, batch norm in inference mode;
* ``finetune``: the head and the last ``transfer.train_last_n`` stages
  (-1: all) are trained, the backbone at ``transfer.backbone_lr_scale`` times
  the head's learning rate (optax ``multi_transform``); its batch norm is
  frozen or trained by ``transfer.bn_train``;
* ``scratch``: the same model family (or the project's CNN) from random weights,
  the baseline that transfer must beat.

Only trainable parameters are differentiated and carried by the optimizer, so
frozen ones stay bit-identical and cost no backward pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from tqdm.auto import tqdm

from vision.data import augment, pipeline
from vision.data.sources import Split
from vision.train.classification import ClassificationTask, copy_tree, model_kwargs
from vision.train.optim import make_optimizer
from vision.train.state import TrainState

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


def _features_cache_dir() -> str:
  root = os.environ.get("VISION_CACHE_DIR", os.path.expanduser("~/.cache/vision"))
  return os.path.join(root, "features")


class TransferTask(ClassificationTask):
  def __init__(self, config, splits):
    self.mode = config.transfer.mode
    if self.mode not in MODES:
      raise ValueError(f"unknown transfer.mode {self.mode!r}; choose one of {', '.join(MODES)}.")
    self.pretrained = None
    super().__init__(config, splits)
    if self.mode == "probe":
      self._switch_to_features(splits)

  # -- model --------------------------------------------------------------------
  def build_model(self):
    config = self.config
    if self.mode == "scratch":
      model_config = config.scratch_model
      return super_create(model_config, self.num_classes)
    from vision.weights import load_pretrained

    weights = config.model.weights or None
    kwargs = dict(config.model.get("kwargs", {}) or {})
    num_classes = None if self.mode == "probe" else self.num_classes
    model, variables = load_pretrained(
      config.model.name,
      weights,
      num_classes=num_classes,
      dtype=jnp.dtype(config.model.dtype),
      rng=jax.random.key(config.seed),
      **kwargs,
    )
    self.backbone = model
    self.pretrained = variables
    if self.mode == "probe":
      return LinearProbe(self.num_classes)
    return model

  def trainable_labels(self, params):
    """'head' / 'backbone' / 'frozen' for every parameter leaf (a flat dict)."""
    flat = _flat(params)
    if self.mode in ("probe", "scratch"):
      return {k: "head" for k in flat}
    from vision.models.backbones import stage_mask

    layout = self.backbone.stage_layout()
    head_names = {n for stage, names in layout if stage == "head" for n in names}
    body_stages = [s for s in layout if s[0] != "head"]
    last_n = 0
    if self.mode == "finetune":
      last_n = self.config.transfer.train_last_n
      last_n = len(body_stages) if last_n < 0 else min(last_n, len(body_stages))
    mask = _flat(stage_mask(params, self.backbone, last_n, include_head=True))
    return {
      k: ("head" if k[0] in head_names else "backbone") if mask[k] else "frozen" for k in flat
    }

  # -- features for the linear probe ----------------------------------------------
  def _features_key(self, split: Split, role: str = "train") -> str:
    config = self.config
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
        # Only the training split is subset (loop._load_splits), so validation and
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

  def extract_features(self, split: Split, role: str) -> np.ndarray:
    """Pooled backbone features of every example of ``split`` (cached on disk)."""
    path = os.path.join(_features_cache_dir(), f"{self._features_key(split, role)}.npy")
    if os.path.exists(path):
      return np.load(path)
    features = self.compute_features(split, role)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npy"  # atomic: concurrent runs may share the cache
    np.save(tmp, features)
    os.replace(tmp, path)
    return features

  def compute_features(self, split: Split, role: str) -> np.ndarray:
    model, variables = self.backbone, self.pretrained
    aug = self.config.aug

    @jax.jit
    def embed(images):
      features, _ = model.apply(variables, augment.eval_preprocess(images, aug), train=False)
      return features

    batch_size = self.config.get("feature_batch_size", 256)
    chunks = []
    batches = pipeline.eval_batches(split, batch_size=batch_size)
    total = -(-len(split) // batch_size)
    for batch in tqdm(
      batches,
      total=total,
      desc=f"features {role}",
      leave=False,
      disable=not self.config.get("progress", True),
    ):
      chunks.append(np.asarray(embed(batch["image"]))[batch["mask"].astype(bool)])
    return np.concatenate(chunks).astype(np.float32)

  def _switch_to_features(self, splits):
    start = time.perf_counter()
    for role, split in list(splits.items()):
      features = self.extract_features(split, role)
      splits[role] = Split(
        name=split.name,
        split=split.split,
        num_classes=split.num_classes,
        class_names=split.class_names,
        labels=split.labels,
        read=lambda idx, f=features, y=split.labels: {"image": f[idx], "label": y[idx]},
        image_shape=features.shape[1:],
      )
    # Seconds spent extracting (near 0 when every split came from the cache); the
    # loop's train_seconds start after this.
    self.feature_seconds = time.perf_counter() - start

  # -- state ------------------------------------------------------------------------
  def preprocess_train(self, rng, images):
    if self.mode == "probe":
      return images.astype(jnp.float32)
    return augment.train_preprocess(rng, images, self.config.aug)

  def preprocess_eval(self, images):
    if self.mode == "probe":
      return images.astype(jnp.float32)
    return augment.eval_preprocess(images, self.config.aug)

  def make_tx(self, labels_tree):
    optim = self.config.optim
    head_tx = make_optimizer(optim, self.num_steps)
    scaled = optim.copy_and_resolve_references()
    with scaled.unlocked():
      scaled.learning_rate = optim.learning_rate * self.config.transfer.backbone_lr_scale
    return optax.multi_transform(
      {"head": head_tx, "backbone": make_optimizer(scaled, self.num_steps)}, labels_tree
    )

  def init(self, rng, batch):
    if self.mode in ("probe", "scratch"):
      images = self.preprocess_eval(batch["image"][:1])
      variables = jax.jit(
        lambda r, x: self.model.init({"params": r, "dropout": r}, x, train=False)
      )(rng, images)
    else:
      variables = self.pretrained
    params = variables["params"]
    labels = self.trainable_labels(params)
    trainable = traverse_util.unflatten_dict(
      {k: v for k, v in _flat(params).items() if labels[k] != "frozen"}
    )
    labels_tree = traverse_util.unflatten_dict({k: v for k, v in labels.items() if v != "frozen"})
    tx = self.make_tx(labels_tree)
    extra = {}
    if self.patience:
      extra = {
        "best_accuracy": jnp.array(-1.0, jnp.float32),
        "evals_since_best": jnp.array(0, jnp.int32),
        "best_params": copy_tree(params),
        "best_batch_stats": copy_tree(variables.get("batch_stats", {})),
      }
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=tx.init(trainable),
      batch_stats=variables.get("batch_stats", {}),
      extra=extra,
      tx=tx,
    )

  def trainable_params(self, state):
    labels = self.trainable_labels(state.params)
    return {k: v for k, v in _flat(state.params).items() if labels[k] != "frozen"}

  # -- step -------------------------------------------------------------------------------
  def bn_mode_train(self) -> bool:
    if self.mode == "scratch":
      return True
    return self.mode == "finetune" and self.config.transfer.bn_train

  def train_step(self, state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    aug_rng, dropout_rng, mix_rng = jax.random.split(rng, 3)
    images = self.preprocess_train(aug_rng, batch["image"])
    labels_of = self.trainable_labels(state.params)
    flat = _flat(state.params)
    trainable = traverse_util.unflatten_dict(
      {k: v for k, v in flat.items() if labels_of[k] != "frozen"}
    )
    frozen = {k: v for k, v in flat.items() if labels_of[k] == "frozen"}
    bn_train = self.bn_mode_train()
    targets = optax.smooth_labels(
      jax.nn.one_hot(batch["label"], self.num_classes), self.config.get("label_smoothing", 0.0)
    )
    images, targets = augment.mixup(mix_rng, images, targets, self.config.aug.get("mixup", 0.0))

    def loss_fn(trainable):
      params = traverse_util.unflatten_dict({**frozen, **_flat(trainable)})
      variables = {"params": params, "batch_stats": state.batch_stats}
      if bn_train:
        (logits, _), updates = self.model.apply(
          variables, images, train=True, rngs={"dropout": dropout_rng}, mutable=["batch_stats"]
        )
        new_stats = updates.get("batch_stats", state.batch_stats)
      else:
        logits, _ = self.model.apply(variables, images, train=False)
        new_stats = state.batch_stats
      logits = logits.astype(jnp.float32)
      return optax.softmax_cross_entropy(logits, targets).mean(), (logits, new_stats)

    (loss, (logits, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    if bn_train and self.mode == "finetune":
      # Only the batch statistics of trained stages move; frozen stages keep theirs.
      # Statistics belong to the top-level module (stage) their parameters name.
      trained = {k[0] for k, v in labels_of.items() if v != "frozen"}
      old, new = _flat(state.batch_stats), _flat(new_stats)
      new_stats = traverse_util.unflatten_dict(
        {k: new[k] if k[0] in trained else v for k, v in old.items()}
      )
    updates, opt_state = state.tx.update(grads, state.opt_state, trainable)
    trainable = optax.apply_updates(trainable, updates)
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

  def predict(self, state, images):
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    logits, _ = self.model.apply(variables, self.preprocess_eval(images), train=False)
    return logits.astype(jnp.float32)

  def finalize(self, state, ctx):
    results = super().finalize(state, ctx)
    flat = _flat(state.params)
    labels = self.trainable_labels(state.params)
    trained = sum(int(v.size) for k, v in flat.items() if labels[k] != "frozen")
    results["params_trained"] = float(trained)
    results["params_frozen"] = float(sum(int(v.size) for v in flat.values()) - trained)
    if self.mode == "probe":
      results["feature_seconds"] = round(self.feature_seconds, 2)
    return results


def super_create(model_config, num_classes):
  from vision.models.registry import create_model

  return create_model(model_config.name, **model_kwargs(model_config, num_classes))
