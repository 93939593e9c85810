"""Image classification: the task behind the CNN baseline and transfer learning.

One pure step: preprocess uint8 images on the device (augmentation seeded by
``fold_in(rng, step)``), cross-entropy with optional label smoothing, one
optax update, batch statistics carried in the state. Final evaluation on the
test split writes accuracy tables and pictures.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.special import log_softmax

from vision import viz
from vision.data import augment, pipeline
from vision.models.registry import create_model
from vision.train.loop import shard_batch
from vision.train.optim import make_optimizer
from vision.train.state import TrainState
from vision.train.task import Task

MODEL_META_FIELDS = ("name", "weights", "dtype")


def copy_tree(tree):
  """Fresh buffers for every leaf: the state is donated to the step, and one buffer must not
  appear twice in it (e.g. the current and the best parameters of early stopping)."""
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def model_kwargs(model_config, num_classes: int) -> dict:
  kwargs = {k: v for k, v in model_config.items() if k not in MODEL_META_FIELDS}
  kwargs["num_classes"] = num_classes
  kwargs["dtype"] = jnp.dtype(model_config.get("dtype", "float32"))
  return kwargs


class ClassificationTask(Task):
  """Softmax classifier on ``splits['train']``, selected on 'val', reported on 'test'."""

  def __init__(self, config, splits):
    super().__init__(config, splits)
    self.num_classes = splits["train"].num_classes
    self.class_names = splits["train"].class_names
    self.model = self.build_model()
    self.patience = config.get("early_stopping_patience", 0) or 0
    # Splits whose images are shown in pictures (a task may train on features instead).
    self.display_splits = dict(splits)

  def build_model(self):
    return create_model(self.config.model.name, **model_kwargs(self.config.model, self.num_classes))

  # -- state ------------------------------------------------------------------
  def make_tx(self):
    return make_optimizer(self.config.optim, self.num_steps)

  def init(self, rng, batch):
    images = augment.eval_preprocess(batch["image"][:1], self.config.aug)
    variables = jax.jit(lambda r, x: self.model.init({"params": r, "dropout": r}, x, train=False))(
      rng, images
    )
    params = variables["params"]
    extra = {}
    if self.patience:
      extra = {
        "best_accuracy": jnp.array(-1.0, jnp.float32),
        "evals_since_best": jnp.array(0, jnp.int32),
        "best_params": copy_tree(params),
        "best_batch_stats": copy_tree(variables.get("batch_stats", {})),
      }
    return TrainState.create(
      params=params, tx=self.make_tx(), batch_stats=variables.get("batch_stats", {}), extra=extra
    )

  # -- steps ------------------------------------------------------------------
  def loss_fn(self, params, state, images, labels, rng, train=True):
    variables = {"params": params, "batch_stats": state.batch_stats}
    if train:
      (logits, _), updates = self.model.apply(
        variables, images, train=True, rngs={"dropout": rng}, mutable=["batch_stats"]
      )
    else:
      logits, _ = self.model.apply(variables, images, train=False)
      updates = {"batch_stats": state.batch_stats}
    logits = logits.astype(jnp.float32)
    targets = optax.smooth_labels(
      jax.nn.one_hot(labels, self.num_classes), self.config.get("label_smoothing", 0.0)
    )
    loss = optax.softmax_cross_entropy(logits, targets).mean()
    return loss, (logits, updates.get("batch_stats", state.batch_stats))

  def train_step(self, state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    aug_rng, dropout_rng = jax.random.split(rng)
    images = augment.train_preprocess(aug_rng, batch["image"], self.config.aug)
    grad_fn = jax.value_and_grad(self.loss_fn, has_aux=True)
    (loss, (logits, batch_stats)), grads = grad_fn(
      state.params, state, images, batch["label"], dropout_rng
    )
    state = state.apply_gradients(grads, batch_stats=batch_stats)
    metrics = {
      "loss": loss,
      "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
      "grad_norm": optax.global_norm(grads),
    }
    return state, metrics

  def predict(self, state, images):
    images = augment.eval_preprocess(images, self.config.aug)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    logits, _ = self.model.apply(variables, images, train=False)
    return logits.astype(jnp.float32)

  def eval_step(self, state, batch):
    logits = self.predict(state, batch["image"])
    labels, mask = batch["label"], batch["mask"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    top3 = jax.lax.top_k(logits, min(3, self.num_classes))[1]
    return {
      "loss": jnp.sum(loss * mask),
      "correct": jnp.sum((top3[:, 0] == labels) * mask),
      "correct_top3": jnp.sum(jnp.any(top3 == labels[:, None], -1) * mask),
      "count": jnp.sum(mask),
    }

  def summarize_eval(self, totals):
    count = max(float(totals["count"]), 1.0)
    return {
      "loss": float(totals["loss"]) / count,
      "accuracy": float(totals["correct"]) / count,
      "top3_accuracy": float(totals["correct_top3"]) / count,
    }

  # -- early stopping -----------------------------------------------------------
  def after_eval(self, state, val):
    if not self.patience:
      return state
    extra = dict(state.extra)
    if val["accuracy"] > float(extra["best_accuracy"]):
      extra.update(
        best_accuracy=jnp.array(val["accuracy"], jnp.float32),
        evals_since_best=jnp.array(0, jnp.int32),
        best_params=copy_tree(state.params),
        best_batch_stats=copy_tree(state.batch_stats),
      )
    else:
      extra["evals_since_best"] = extra["evals_since_best"] + 1
    return state.replace(extra=extra)

  def should_stop(self, state):
    return bool(self.patience) and int(state.extra["evals_since_best"]) >= self.patience

  # -- final evaluation ------------------------------------------------------------
  def finalize(self, state, ctx):
    if self.patience and float(state.extra["best_accuracy"]) >= 0:
      # Model selection on validation accuracy: report the best checkpointed weights.
      state = state.replace(
        params=state.extra["best_params"], batch_stats=state.extra["best_batch_stats"]
      )
    results = {}
    if "val" in ctx.splits:
      val = ctx.evaluate(state, ctx.splits["val"])
      results.update({f"val_{k}": v for k, v in val.items()})
    split = ctx.splits.get("test")
    if split is None:
      return results
    predict = jax.jit(
      self.predict, in_shardings=(ctx.replicated, ctx.data_sharding), out_shardings=ctx.replicated
    )
    preds, labels, wrong, probs_all = [], [], [], []
    offset = 0
    for batch in pipeline.eval_batches(split, batch_size=self.config.batch_size):
      mask = batch.pop("mask").astype(bool)
      logits = np.asarray(
        jax.device_get(
          predict(state, shard_batch({"image": batch["image"]}, ctx.data_sharding)["image"])
        )
      )[mask]
      pred = logits.argmax(-1)
      true = batch["label"][mask]
      preds.append(pred)
      labels.append(true)
      probs_all.append(logits)
      for i, (p, t) in enumerate(zip(pred, true)):
        if p != t and len(wrong) < 32:
          wrong.append((offset + i, p, t))
      offset += len(true)
    preds, labels = np.concatenate(preds), np.concatenate(labels)
    logits = np.concatenate(probs_all)
    top3 = np.argsort(-logits, -1)[:, :3]
    confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
    np.add.at(confusion, (labels, preds), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    log_probs = log_softmax(logits, axis=-1)
    results.update(
      test_accuracy=float(np.mean(preds == labels)),
      test_top3_accuracy=float(np.mean((top3 == labels[:, None]).any(-1))),
      test_loss=float(-np.mean(log_probs[np.arange(len(labels)), labels])),
      test_examples=float(len(labels)),
    )
    for name, acc in zip(self.class_names, per_class):
      results[f"test_class_accuracy/{name}"] = float(acc)
    viz.plot_confusion(os.path.join(ctx.workdir, "confusion.png"), confusion, self.class_names)
    # Pictures come from the image split even when the model saw cached features.
    display = self.display_splits.get("test", split)
    wrong_images = (
      display.read(np.array([i for i, _, _ in wrong], np.int64))["image"] if wrong else []
    )
    wrong_titles = [
      f"pred: {self.class_names[p]}\ntrue: {self.class_names[t]}" for _, p, t in wrong
    ]
    viz.labelled_gallery(os.path.join(ctx.workdir, "misclassified.png"), wrong_images, wrong_titles)
    with open(os.path.join(ctx.workdir, "per_class_accuracy.md"), "w") as f:
      f.write("| class | test accuracy | examples |\n|---|---|---|\n")
      for name, acc, n in zip(self.class_names, per_class, confusion.sum(1)):
        f.write(f"| {name} | {acc:.4f} | {n} |\n")
    ctx.writer.write_scalars(
      ctx.num_steps,
      {
        "test/accuracy": results["test_accuracy"],
        "test/top3_accuracy": results["test_top3_accuracy"],
      },
    )
    return results
