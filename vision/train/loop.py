"""The training loop shared by every experiment.

``run(config, workdir)`` loads the data, builds the :class:`vision.train.task.Task`
named by ``config.task`` (``build(config, splits, num_steps)`` of the module in
:data:`TASKS`), restores the latest checkpoint in ``workdir`` if there is one,
runs the task's pure step ``(state, batch, rng) -> (state, metrics)`` jitted
over a data-parallel mesh, logs, evaluates, checkpoints, and finally calls the
task's ``report`` with a :class:`ReportContext` and writes ``results.json``
and the training curves.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from vision import configs, validate, viz
from vision.data import pipeline
from vision.data.sources import Split, load_split
from vision.errors import ConfigError, NonFiniteLossError, WorkdirMismatchError
from vision.ops import kernels
from vision.train import checkpoint as ckpt_lib
from vision.train import writers
from vision.train.state import count_params
from vision.train.task import Task

# config.task -> the module whose ``build(config, splits, num_steps)`` returns its Task.
TASKS = {
  "classification": "vision.train.classification",
  "transfer": "vision.train.transfer",
  "gan": "vision.train.gan",
  "autoencoder": "vision.train.autoencoding",
  "denoise": "vision.train.autoencoding",
  "superres": "vision.train.autoencoding",
  "vae": "vision.train.generative",
  "aae": "vision.train.generative",
}
# Fields that may change between a run and its resumption without changing the model.
RESUMABLE_FIELDS = ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "progress")


@dataclasses.dataclass(frozen=True)
class ReportContext:
  """What a task's ``report(state, ctx)`` may use.

  ``workdir`` is where the report writes its files: the run's workdir on
  process 0, a scratch folder removed afterwards on the other processes of a
  multi-process run (every process runs the report, whose computations are
  collective, but only process 0's files are kept); ``writer`` writes only on
  process 0.
  ``evaluate(state, split)`` runs the task's jitted ``eval_step`` over a whole
  split and returns ``summarize_eval`` of the sums; ``replicated`` and
  ``data_sharding`` are the shardings of the state and of a batch on ``mesh``.
  """

  workdir: str
  writer: writers.MetricWriter
  config: Any
  num_steps: int
  splits: Mapping[str, Split]
  mesh: jax.sharding.Mesh
  replicated: NamedSharding
  data_sharding: NamedSharding
  evaluate: Callable[[Any, Split], dict[str, float]]


def make_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh over every device, the batch split along the 'data' axis."""
  return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def shard_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This host's rows -> one global array per key, split over the 'data' axis."""
  return {
    k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
  }


def build_task(config, splits: Mapping[str, Split], num_steps: int) -> Task:
  """``build(config, splits, num_steps)`` of the module registered for ``config.task``."""
  if config.task not in TASKS:
    raise ConfigError(f"unknown task {config.task!r}; tasks: {', '.join(sorted(TASKS))}.")
  return importlib.import_module(TASKS[config.task]).build(config, splits, num_steps)


def num_steps_of(config, train_split: Split) -> int:
  """``config.num_steps`` if set, else ``num_epochs`` passes over the training split."""
  return config.get("num_steps") or config.num_epochs * pipeline.steps_per_epoch(
    train_split, config.batch_size
  )


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


def load_splits(config) -> dict[str, Split]:
  """'train' (and 'val', 'test' when the config names them), as ``config.data`` selects.

  ``data.per_class``: a seeded few-shot subset of the training split;
  ``data.class_filter``: only the examples of these classes, in every split.
  """
  data = config.data
  splits = {"train": load_split(data, data.train_split)}
  if data.get("per_class"):
    splits["train"] = splits["train"].per_class(data.per_class, seed=config.seed)
  for role in ("val", "test"):
    spec = data.get(f"{role}_split")
    if spec:
      splits[role] = load_split(data, spec)
  keep = tuple(data.get("class_filter", ()) or ())
  if keep:
    splits = {
      role: split.subset(np.flatnonzero(np.isin(split.labels, keep)))
      for role, split in splits.items()
    }
  return splits


def evaluate(task: Task, state, split: Split, batch_size: int, eval_fn, sharding) -> dict:
  """Runs the jitted eval step over a whole split and sums its outputs on the host."""
  totals: dict[str, float] = {}
  for batch in pipeline.eval_batches(split, batch_size=batch_size):
    sums = jax.device_get(eval_fn(state, shard_batch(batch, sharding)))
    for key, value in sums.items():
      totals[key] = totals.get(key, 0.0) + np.asarray(value, np.float64)
  return task.summarize_eval(totals)


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
  """Trains ``config`` in ``workdir`` (resuming if possible); returns the final results.

  The kernels choice of ``config.kernels`` holds for the whole run (and is
  restored afterwards, so a run started inside another one leaves it as it was).
  """
  with kernels.use(config.get("kernels", "auto")):
    return _run(config, workdir)


def _run(config, workdir: str) -> dict[str, Any]:
  validate.check(config, workdir, expect="train")  # before the workdir is created or written
  t_start = time.time()
  workdir = os.path.abspath(workdir)
  is_main = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  check_workdir(workdir, config)
  if is_main:
    writers.write_json(os.path.join(workdir, "config.json"), configs.to_dict(config))

  mesh = make_mesh()
  if config.batch_size % jax.device_count():
    raise ConfigError(
      f"global batch size {config.batch_size} is not divisible by the {jax.device_count()} "
      f"devices; use a multiple of {jax.device_count()} (--config.batch_size=...)."
    )
  replicated = NamedSharding(mesh, P())
  data_sharding = NamedSharding(mesh, P("data"))

  loaded = load_splits(config)
  num_steps = num_steps_of(config, loaded["train"])
  task = build_task(config, loaded, num_steps)
  splits = task.splits
  train_split = splits["train"]

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
    # The newest checkpoint that reads; damaged newer ones are skipped with a warning.
    state, _ = checkpointer.restore_latest(state)
    start_step = int(state.step)
    logging.info("resumed from step %d in %s", start_step, workdir)

  if is_main:
    print(
      f"[vision] task={config.task} model={config.model.name} "
      f"params={count_params(task.trainable_params(state)):,} devices={jax.device_count()} "
      f"processes={jax.process_count()} "
      f"steps={num_steps} start={start_step}\n{config}",
      flush=True,
    )

  writer = writers.MetricWriter(workdir, resume_step=start_step, active=is_main)
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

  def evaluate_split(st, split: Split) -> dict[str, float]:
    return evaluate(task, st, split, config.batch_size, eval_step, data_sharding)

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
    disable=not config.get("progress", True) or not is_main,
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
        val = evaluate_split(state, splits["val"])
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
  report_dir = workdir if is_main else tempfile.mkdtemp(prefix=f"report-{jax.process_index()}-")
  ctx = ReportContext(
    workdir=report_dir,
    writer=writer,
    config=config,
    num_steps=num_steps,
    splits=splits,
    mesh=mesh,
    replicated=replicated,
    data_sharding=data_sharding,
    evaluate=evaluate_split,
  )
  try:
    results = {k: float(v) for k, v in task.report(state, ctx).items()}
  finally:
    if not is_main:
      shutil.rmtree(report_dir, ignore_errors=True)
  results["train_steps"] = float(num_steps)
  results["wall_seconds"] = round(time.time() - t_start, 2)
  results["train_seconds"] = round(train_seconds, 2)
  if is_main:
    records = writers.read_metrics(workdir)
    if records:
      viz.plot_curves(os.path.join(workdir, "curves.png"), records)
    writers.write_json(os.path.join(workdir, "results.json"), results)
  writer.close()
  checkpointer.close()
  return results
