"""Image classification: the task behind the CNN baseline and transfer learning.

``build(config, splits, num_steps)`` returns the :class:`Task` of a softmax
classifier trained on ``splits['train']``, selected on 'val' (early stopping,
``config.early_stopping_patience``) and reported on 'test'. One pure step:
preprocess uint8 images on the device (augmentation seeded by
``fold_in(rng, step)``), cross-entropy with optional label smoothing, one optax
update, batch statistics carried in the state. The pieces that do not depend
on the model (evaluation sums, early stopping, the final report) are functions
here that :mod:`vision.train.transfer` reuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision.data import augment
from vision.data.sources import Split
from vision.evaluate import classification_report
from vision.evaluate.batched import batched_apply, global_array
from vision.models.registry import create_model, model_kwargs
from vision.train.optim import make_optimizer
from vision.train.state import TrainState, copy_tree
from vision.train.task import Task


def make_model(model_config, num_classes: int) -> nn.Module:
  """The registered classifier ``model_config.name`` with ``num_classes`` outputs."""
  return create_model(model_config.name, **model_kwargs(model_config, num_classes=num_classes))


# -- pieces shared with transfer learning -------------------------------------------------------
def early_stopping_extra(patience: int, params, batch_stats) -> dict:
  """The state's ``extra`` slots of early stopping: the best weights so far and a counter."""
  if not patience:
    return {}
  return {
    "best_accuracy": jnp.array(-1.0, jnp.float32),
    "evals_since_best": jnp.array(0, jnp.int32),
    "best_params": copy_tree(params),
    "best_batch_stats": copy_tree(batch_stats),
  }


def early_stopping(patience: int) -> tuple[Callable, Callable]:
  """``(after_eval, should_stop)``: keep the weights of the best validation accuracy, and stop
  after ``patience`` evaluations without a better one (0: never)."""

  def after_eval(state, val):
    if not patience:
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

  def should_stop(state) -> bool:
    return bool(patience) and int(state.extra["evals_since_best"]) >= patience

  return after_eval, should_stop


def selected(state):
  """The state with the weights that model selection chose: the best validation evaluation's
  when early stopping recorded one, else the last."""
  if "best_accuracy" in state.extra and float(state.extra["best_accuracy"]) >= 0:
    return state.replace(
      params=state.extra["best_params"], batch_stats=state.extra["best_batch_stats"]
    )
  return state


def eval_sums(logits, labels, mask, num_classes: int) -> dict[str, jax.Array]:
  """Masked sums of the loss and of the top-1 / top-3 hits of one batch."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  top3 = jax.lax.top_k(logits, min(3, num_classes))[1]
  return {
    "loss": jnp.sum(loss * mask),
    "correct": jnp.sum((top3[:, 0] == labels) * mask),
    "correct_top3": jnp.sum(jnp.any(top3 == labels[:, None], -1) * mask),
    "count": jnp.sum(mask),
  }


def summarize_eval(totals) -> dict[str, float]:
  count = max(float(totals["count"]), 1.0)
  return {
    "loss": float(totals["loss"]) / count,
    "accuracy": float(totals["correct"]) / count,
    "top3_accuracy": float(totals["correct_top3"]) / count,
  }


def make_report(
  predict: Callable, batch_size: int, class_names, image_splits: Mapping[str, Split]
) -> Callable:
  """``report(state, ctx)``: validation metrics and the test report of the selected weights.

  ``predict(state, images) -> logits`` is jitted here; ``image_splits`` are the
  splits whose images the pictures show (the model may have seen features).
  """

  def report(state, ctx) -> dict[str, float]:
    state = selected(state)
    results = {}
    if "val" in ctx.splits:
      val = ctx.evaluate(state, ctx.splits["val"])
      results.update({f"val_{k}": v for k, v in val.items()})
    split = ctx.splits.get("test")
    if split is None:
      return results
    jitted = jax.jit(
      predict, in_shardings=(ctx.replicated, ctx.data_sharding), out_shardings=ctx.replicated
    )
    logits = batched_apply(
      lambda b: {
        "logits": jitted(state, global_array(split.read(b["index"])["image"], ctx.data_sharding))
      },
      {"index": np.arange(len(split))},
      batch_size,
    )["logits"]
    display = image_splits.get("test", split)
    results.update(
      classification_report.report(
        ctx.workdir, logits, split.labels, class_names, lambda idx: display.read(idx)["image"]
      )
    )
    ctx.writer.write_scalars(
      ctx.num_steps,
      {
        "test/accuracy": results["test_accuracy"],
        "test/top3_accuracy": results["test_top3_accuracy"],
      },
    )
    return results

  return report


# -- the task -----------------------------------------------------------------------------------
def build(config, splits: Mapping[str, Split], num_steps: int) -> Task:
  """Softmax classifier ``config.model`` on ``splits['train']``."""
  num_classes = splits["train"].num_classes
  model = make_model(config.model, num_classes)
  patience = config.get("early_stopping_patience", 0) or 0
  smoothing = config.get("label_smoothing", 0.0)

  def init(rng, batch):
    images = augment.eval_preprocess(batch["image"][:1], config.aug)
    variables = jax.jit(lambda r, x: model.init({"params": r, "dropout": r}, x, train=False))(
      rng, images
    )
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    return TrainState.create(
      params=params,
      tx=make_optimizer(config.optim, num_steps),
      batch_stats=batch_stats,
      extra=early_stopping_extra(patience, params, batch_stats),
    )

  def loss_fn(params, batch_stats, images, labels, rng):
    (logits, _), updates = model.apply(
      {"params": params, "batch_stats": batch_stats},
      images,
      train=True,
      rngs={"dropout": rng},
      mutable=["batch_stats"],
    )
    logits = logits.astype(jnp.float32)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing)
    loss = optax.softmax_cross_entropy(logits, targets).mean()
    return loss, (logits, updates.get("batch_stats", batch_stats))

  def train_step(state, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    aug_rng, dropout_rng = jax.random.split(rng)
    images = augment.train_preprocess(aug_rng, batch["image"], config.aug)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (logits, batch_stats)), grads = grad_fn(
      state.params, state.batch_stats, images, batch["label"], dropout_rng
    )
    state = state.apply_gradients(grads, batch_stats=batch_stats)
    metrics = {
      "loss": loss,
      "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
      "grad_norm": optax.global_norm(grads),
    }
    return state, metrics

  def predict(state, images):
    images = augment.eval_preprocess(images, config.aug)
    logits, _ = model.apply(
      {"params": state.params, "batch_stats": state.batch_stats}, images, train=False
    )
    return logits.astype(jnp.float32)

  def eval_step(state, batch):
    return eval_sums(predict(state, batch["image"]), batch["label"], batch["mask"], num_classes)

  after_eval, should_stop = early_stopping(patience)
  return Task(
    init=init,
    train_step=train_step,
    eval_step=eval_step,
    report=make_report(predict, config.batch_size, splits["train"].class_names, splits),
    splits=splits,
    summarize_eval=summarize_eval,
    after_eval=after_eval,
    should_stop=should_stop,
  )
