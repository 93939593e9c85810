"""The training loop shared by every experiment.

``run(config, workdir)`` builds the task named by ``config.task``, restores
the latest checkpoint in ``workdir`` if there is one, runs the pure jitted
step ``(state, batch, rng) -> (state, metrics)`` over a data-parallel mesh,
logs, evaluates, checkpoints, and finally writes ``results.json`` and figures.

A task is an object with

* ``init(rng, batch) -> state``: the initial train state (a pytree with ``.step``);
* ``train_step(state, batch, rng) -> (state, metrics)``: pure, jitted here;
* ``eval_step(state, batch) -> sums``: pure; per-batch sums (masked) that
  ``summarize_eval`` turns into metrics;
* ``finalize(state, ctx) -> dict``: host-side final evaluation and pictures.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from vision import configs
from vision.data import pipeline
from vision.data.sources import Split, load_split
from vision.errors import NonFiniteLossError, WorkdirMismatchError  # noqa: F401
from vision.train import checkpoint as ckpt_lib
from vision.train import writers
from vision.train.state import count_params

TASKS = {
  "classification": "vision.train.classification:ClassificationTask",
  "transfer": "vision.train.transfer:TransferTask",
  "gan": "vision.train.gan:GANTask",
  "autoencoder": "vision.train.autoencoding:AutoencoderTask",
  "denoise": "vision.train.autoencoding:DenoisingTask",
  "superres": "vision.train.autoencoding:SuperResolutionTask",
  "vae": "vision.train.generative:VAETask",
  "aae": "vision.train.generative:AAETask",
}
# Fields that may change between a run and its resumption without changing the model.
RESUMABLE_FIELDS = ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "progress")


def make_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh over every device, the batch split along the 'data' axis."""
  return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def shard_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This host's rows -> one global array per key, split over the 'data' axis."""
  return {
    k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
  }


def build_task(config, splits: dict[str, Split]):
  if config.task not in TASKS:
    raise ValueError(f"unknown task {config.task!r}; tasks: {', '.join(sorted(TASKS))}.")
  module_name, cls_name = TASKS[config.task].split(":")
  return getattr(importlib.import_module(module_name), cls_name)(config, splits)


def check_workdir(workdir: str, config) -> None:
  """Refuses to resume a workdir whose checkpoints belong to a different config."""
  path = os.path.join(workdir, "config.json")
  has_checkpoints = os.path.isdir(os.path.join(workdir, "checkpoints")) and any(
    name.isdigit() for name in os.listdir(os.path.join(workdir, "checkpoints"))
  )
  if not (os.path.exists(path) and has_checkpoints):
    return
  with open(path) as f:
    old = configs.flatten(json.load(f))
  new = configs.flatten(json.loads(json.dumps(configs.to_dict(config))))
  ignore = lambda key: key.split(".")[-1] in RESUMABLE_FIELDS  # noqa: E731
  changed = sorted(k for k in set(old) | set(new) if not ignore(k) and old.get(k) != new.get(k))
  if changed:
    details = "; ".join(
      f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in changed[:10]
    )
    raise WorkdirMismatchError(
      f"workdir {workdir} holds checkpoints of a different config ({details}). Use a fresh "
      f"--workdir for a new experiment, or delete {workdir} to start this one over."
    )


def _load_splits(config) -> dict[str, Split]:
  data = config.data
  splits = {"train": load_split(data, data.train_split)}
  if data.get("per_class"):
    splits["train"] = splits["train"].per_class(data.per_class, seed=config.seed)
  for role in ("val", "test"):
    spec = data.get(f"{role}_split")
    if spec:
      splits[role] = load_split(data, spec)
  return splits


def evaluate(task, state, split: Split, batch_size: int, eval_fn, sharding) -> dict[str, float]:
  """Runs the jitted eval step over a whole split and sums its outputs on the host."""
  totals: dict[str, float] = {}
  for batch in pipeline.eval_batches(split, batch_size=batch_size):
    sums = jax.device_get(eval_fn(state, shard_batch(batch, sharding)))
    for key, value in sums.items():
      totals[key] = totals.get(key, 0.0) + np.asarray(value, np.float64)
  return task.summarize_eval(totals)


class Context:
  """What a task's ``finalize`` may use: workdir, writer, splits, evaluation."""

  def __init__(self, **kwargs):
    self.__dict__.update(kwargs)


def _first_nonfinite(pending: Iterable[tuple[int, dict]]) -> int | None:
  for step, metrics in pending:
    if not all(math.isfinite(float(v)) for v in metrics.values()):
      return step
  return None


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [
    jnp.all(jnp.isfinite(x))
    for x in jax.tree_util.tree_leaves(tree)
    if jnp.issubdtype(x.dtype, jnp.floating)
  ]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _check_finite_state(state, step: int, checkpointer) -> None:
  """Never overwrite a good checkpoint with NaN/inf parameters."""
  if not bool(_all_finite(state.params)):
    checkpointer.wait()
    raise NonFiniteLossError(
      f"non-finite parameters after step {step}; not saved. The last good checkpoint "
      f"(step {checkpointer.latest_step()}) is kept in {checkpointer.directory}. Lower "
      "--config.optim.learning_rate or set --config.optim.grad_clip_norm=1.0."
    )


def run(config, workdir: str) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming if possible); returns the final results."""
  t_start = time.time()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  check_workdir(workdir, config)
  if jax.process_index() == 0:
    writers.write_json(os.path.join(workdir, "config.json"), configs.to_dict(config))

  mesh = make_mesh()
  if config.batch_size % jax.device_count():
    raise configs.ConfigError(
      f"global batch size {config.batch_size} is not divisible by the {jax.device_count()} "
      f"devices; use a multiple of {jax.device_count()} (--config.batch_size=...)."
    )
  replicated = NamedSharding(mesh, P())
  data_sharding = NamedSharding(mesh, P("data"))

  splits = _load_splits(config)
  task = build_task(config, splits)
  train_split = splits["train"]
  num_steps = config.get("num_steps") or config.num_epochs * pipeline.steps_per_epoch(
    train_split, config.batch_size
  )
  task.num_steps = num_steps

  rng = jax.random.key(config.seed)
  init_rng, train_rng = jax.random.split(rng)
  sample = next(pipeline.eval_batches(train_split, batch_size=config.batch_size))
  sample.pop("mask")
  # Not jitted as a whole: a task may merge pretrained weights (host arrays) into
  # its state, which jit would bake into the program as constants.
  state = jax.device_put(task.init(init_rng, sample), replicated)

  checkpointer = ckpt_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"), keep=config.get("keep_checkpoints", 2)
  )
  start_step = 0
  if checkpointer.latest_step() is not None:
    state = checkpointer.restore(state)
    start_step = int(state.step)
    logging.info("resumed from step %d in %s", start_step, workdir)

  if jax.process_index() == 0:
    print(
      f"[vision] task={config.task} model={config.model.name} "
      f"params={count_params(task.trainable_params(state)):,} devices={jax.device_count()} "
      f"steps={num_steps} start={start_step}\n{config}",
      flush=True,
    )

  writer = writers.MetricWriter(
    workdir, resume_step=start_step, tensorboard=jax.process_index() == 0
  )
  train_step = jax.jit(
    task.train_step,
    donate_argnums=(0,),
    in_shardings=(replicated, data_sharding, replicated),
    out_shardings=(replicated, replicated),
  )
  eval_step = jax.jit(
    task.eval_step, in_shardings=(replicated, data_sharding), out_shardings=replicated
  )
  batches = pipeline.train_batches(
    train_split,
    batch_size=config.batch_size,
    num_steps=num_steps,
    seed=config.seed,
    start_step=start_step,
    num_threads=config.get("data_threads", 2),
  )
  log_every = max(1, config.get("log_every", 50))
  eval_every = config.get("eval_every", 0) or 0
  ckpt_every = config.get("checkpoint_every", 0) or 0
  last_saved = start_step
  pending: list[tuple[int, Any]] = []

  def flush(step: int, bar) -> None:
    # Bring the metrics of the steps since the last flush to the host, stop on a
    # non-finite loss before anything is saved, and log their mean.
    nonlocal pending
    if not pending:
      return
    fetched = [(s, {k: float(v) for k, v in jax.device_get(m).items()}) for s, m in pending]
    pending = []
    bad = _first_nonfinite(fetched)
    if bad is not None:
      checkpointer.wait()
      good = checkpointer.latest_step()
      where = (
        f"the last good checkpoint (step {good}) is kept in {checkpointer.directory}"
        if good is not None
        else "no checkpoint had been written yet"
      )
      raise NonFiniteLossError(
        f"non-finite loss at step {bad} (metrics: {dict(fetched[bad - fetched[0][0]][1])}); "
        f"{where}. Lower --config.optim.learning_rate or set "
        "--config.optim.grad_clip_norm=1.0, then run again in a fresh workdir."
      )
    mean = {f"train/{k}": float(np.mean([m[k] for _, m in fetched])) for k in fetched[-1][1]}
    writer.write_scalars(step, mean)
    bar.set_postfix(
      {
        k.split("/")[1]: f"{v:.4g}"
        for k, v in mean.items()
        if k.split("/")[1] in ("loss", "accuracy", "d_loss", "g_loss")
      },
      refresh=False,
    )

  bar = tqdm(
    total=num_steps,
    initial=start_step,
    desc=f"train {config.model.name}",
    disable=not config.get("progress", True) or jax.process_index() != 0,
    dynamic_ncols=True,
    mininterval=1.0,
  )
  try:
    for step in range(start_step, num_steps):
      batch = shard_batch(next(batches), data_sharding)
      state, metrics = train_step(state, batch, train_rng)
      pending.append((step + 1, metrics))
      done = step + 1
      bar.update(1)
      is_last = done == num_steps
      save_now = is_last or (ckpt_every and done % ckpt_every == 0)
      eval_now = eval_every and (done % eval_every == 0 or is_last) and "val" in splits
      if done % log_every == 0 or save_now or eval_now:
        flush(done, bar)
      if eval_now:
        val = evaluate(task, state, splits["val"], config.batch_size, eval_step, data_sharding)
        writer.write_scalars(done, {f"val/{k}": v for k, v in val.items()})
        state = task.after_eval(state, val)
        bar.write(f"step {done}: " + ", ".join(f"val/{k}={v:.4f}" for k, v in val.items()))
      if save_now:
        _check_finite_state(state, done, checkpointer)
        checkpointer.save(done, state)
        last_saved = done
      if task.should_stop(state):
        bar.write(f"early stop at step {done}")
        flush(done, bar)
        if last_saved != done:
          checkpointer.save(done, state)
        break
  finally:
    bar.close()
    checkpointer.wait()

  train_seconds = time.time() - t_start
  ctx = Context(
    workdir=workdir,
    writer=writer,
    splits=splits,
    config=config,
    mesh=mesh,
    evaluate=lambda st, split: evaluate(
      task, st, split, config.batch_size, eval_step, data_sharding
    ),
    data_sharding=data_sharding,
    replicated=replicated,
    num_steps=num_steps,
  )
  results = task.finalize(state, ctx)
  results = {k: float(v) for k, v in results.items()}
  results["train_steps"] = float(num_steps)
  results["wall_seconds"] = round(time.time() - t_start, 2)
  results["train_seconds"] = round(train_seconds, 2)
  if jax.process_index() == 0:
    from vision import viz

    records = writers.read_metrics(workdir)
    if records:
      viz.plot_curves(os.path.join(workdir, "curves.png"), records)
    writers.write_json(os.path.join(workdir, "results.json"), results)
  writer.close()
  checkpointer.close()
  return results


def global_mean(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  if mask is None:
    return jnp.mean(x)
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)
