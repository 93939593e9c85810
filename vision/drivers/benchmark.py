"""The speed benchmark: four workloads built from the project's own steps, timed on this machine.

Each training workload is the step an experiment runs, built by the
experiment's family (``build(config, splits, num_steps) -> Task``) from its
own config file with the benchmark's batch size and optimizer as overrides,
on random in-memory data:

* ``dcgan``: the train step of ``experiments/gan.py`` (the TF-tutorial DCGAN),
  256 real + 256 fake 28x28 images, Adam 1e-4 for both players; one
  discriminator update then one generator update (the project's step also keeps
  the generator's moving average, work the reference does not do);
* ``vae``: the train step of ``experiments/vae.py`` (ConvVAE-28, latent 2),
  batch 128, Bernoulli likelihood + analytic KL, Adam 1e-4 (the step also
  draws the dynamic binarization of the batch);
* ``finetune``: the train step of ``experiments/transfer.py:finetune`` with
  EfficientNet-Lite0, a new 37-way head, batch norm in training mode,
  SGD(momentum 0.9) on every parameter, batch 32 at 224x224;
* ``pgd``: :func:`vision.optimize.attacks.pgd` on EfficientNet-Lite0 in inference
  mode, L-inf, step 2/255, eps 8/255, batch 32 at 224x224. The attack runs 10
  steps in one ``fori_loop`` (plus one final forward pass that picks the returned
  iterate); ``ms_per_step`` is the whole call / 10, so slightly pessimistic.

Timing: compile excluded (and reported), warm-up calls excluded, then the
median of ``repeats`` calls, each ended with ``block_until_ready``. The state
is donated and threaded through the calls, as in training. ``flops_per_step``
is XLA's cost analysis of the compiled step; ``matmul_fraction`` is the
achieved FLOP/s over the float32 matmul rate measured first on the same
machine (:func:`matmul_rate`). ``kernels`` (``auto``, ``portable`` or ``cpu``,
:mod:`vision.ops.kernels`) chooses the form of the models' operations, so the
two forms can be timed against each other. The measurements are in
docs/performance.md.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vision import configs
from vision.data.sources import Split
from vision.errors import InputError
from vision.models.registry import create_model
from vision.ops import kernels
from vision.optimize.attacks import pgd
from vision.optimize.frozen import logits_fn
from vision.train import gan, generative, transfer

WORKLOADS = ("dcgan", "vae", "finetune", "pgd")


@dataclasses.dataclass
class Workload:
  """One benchmark step: ``step(*args) -> outputs``; ``carry`` maps outputs to the next args."""

  name: str
  images_per_call: int
  steps_per_call: int
  step: Callable
  args: tuple
  carry: Callable[[tuple, Any], tuple]
  donate: tuple[int, ...] = ()
  notes: str = ""


def random_split(n: int, shape: Sequence[int], num_classes: int, seed: int = 0) -> Split:
  """An in-memory :class:`vision.data.sources.Split` of random uint8 images (never zeros)."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
  labels = rng.integers(0, num_classes, n).astype(np.int32)
  return Split(
    "random",
    "train",
    num_classes,
    [f"class_{i}" for i in range(num_classes)],
    labels,
    lambda idx: {"image": images[idx], "label": labels[idx]},
    tuple(shape),
  )


def train_workload(
  name: str,
  build: Callable,
  spec: str,
  overrides: Sequence[str],
  shape: Sequence[int],
  num_classes: int,
  batch_size: int,
  num_steps: int = 1000,
) -> Workload:
  """The train step of the task ``build(config, splits, num_steps)`` makes from config ``spec``."""
  config = configs.load_config(spec, [*overrides, f"batch_size={batch_size}"])
  split = random_split(batch_size, shape, num_classes)
  task = build(config, {"train": split}, num_steps)
  batch = {k: jnp.asarray(v) for k, v in split.read(np.arange(batch_size)).items()}
  state = jax.jit(task.init)(jax.random.key(0), batch)
  return Workload(
    name=name,
    images_per_call=batch_size,
    steps_per_call=1,
    step=task.train_step,
    args=(state, batch, jax.random.key(1)),
    carry=lambda args, out: (out[0], *args[1:]),
    donate=(0,),
  )


# The reference's optimizers and settings, on top of each experiment's config.
DCGAN_OVERRIDES = (
  "model.name=dcgan",
  "g_optim.learning_rate=1e-4",
  "d_optim.learning_rate=1e-4",
  "g_optim.b1=0.9",
  "d_optim.b1=0.9",
  # Fixed-noise grids are rendered once per epoch in a real run; not in a timed step.
  "gan.snapshot_every=1000000",
  # The step needs no feature classifier (gan.build would load, or train, one).
  "eval.classifier=",
)
VAE_OVERRIDES = (
  "model.latent_dim=2",
  "optim.name=adam",
  "optim.learning_rate=1e-4",
  "optim.schedule=constant",
  "optim.warmup_steps=0",
)
FINETUNE_OVERRIDES = (
  "optim.name=momentum",
  "optim.momentum=0.9",
  "optim.learning_rate=0.01",
  "optim.schedule=constant",
  "optim.warmup_steps=0",
  "optim.weight_decay=0.0",
  "transfer.train_last_n=-1",
  "transfer.backbone_lr_scale=1.0",
  "transfer.bn_train=True",
  "aug.random_resized_crop=False",
  "aug.flip=False",
  "label_smoothing=0.0",
)


def build_dcgan(batch_size: int = 256, dtype: str = "float32") -> Workload:
  overrides = (*DCGAN_OVERRIDES, f"model.dtype={dtype}")
  return train_workload(
    "dcgan", gan.build, "experiments/gan.py", overrides, (28, 28, 1), 10, batch_size
  )


def build_vae(batch_size: int = 128, dtype: str = "float32") -> Workload:
  overrides = (*VAE_OVERRIDES, f"model.dtype={dtype}")
  return train_workload(
    "vae", generative.build, "experiments/vae.py", overrides, (28, 28, 1), 10, batch_size
  )


def build_finetune(
  batch_size: int = 32, size: int = 224, model: str = "efficientnet_lite0", dtype: str = "float32"
):
  overrides = [f"model.name={model}", f"aug.size={size}", f"model.dtype={dtype}"]
  overrides += FINETUNE_OVERRIDES
  return train_workload(
    "finetune",
    transfer.build,
    "experiments/transfer.py:finetune",
    overrides,
    (size, size, 3),
    37,
    batch_size,
  )


def random_variables(network, images: jax.Array, rng: np.random.Generator) -> dict:
  """Random weights of ``network``'s shapes (the time does not depend on their values)."""
  shapes = jax.eval_shape(network.init, jax.random.key(0), images[:1])
  variables = jax.tree.map(
    lambda s: jnp.asarray(rng.normal(0, 0.05, s.shape).astype(np.float32)), shapes
  )
  variables["batch_stats"] = jax.tree.map(jnp.abs, variables["batch_stats"])
  return variables


def build_pgd(
  batch_size: int = 32,
  size: int = 224,
  steps: int = 10,
  model: str = "efficientnet_lite0",
  dtype: str = "float32",
) -> Workload:
  network = create_model(model, dtype=getattr(jnp, dtype))
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((batch_size, size, size, 3), dtype=np.float32))
  labels = jnp.asarray(rng.integers(0, 1000, batch_size).astype(np.int32))
  variables = random_variables(network, images, rng)
  fn = logits_fn(network)

  def attack(variables, images, labels):
    return pgd(
      fn,
      variables,
      images,
      labels,
      eps=8 / 255,
      step_size=2 / 255,
      steps=steps,
      norm="linf",
      random_start=False,
    )

  return Workload(
    name="pgd",
    images_per_call=batch_size,
    steps_per_call=steps,
    step=attack,
    args=(variables, images, labels),
    carry=lambda args, out: args,
    notes=f"{steps} steps per call in one fori_loop",
  )


BUILDERS = {"dcgan": build_dcgan, "vae": build_vae, "finetune": build_finetune, "pgd": build_pgd}
DTYPES = ("float32", "bfloat16")


def check_workloads(names: Sequence[str]) -> list[str]:
  """``names`` (all workloads when empty); an unknown one is an InputError."""
  unknown = [n for n in names if n not in BUILDERS]
  if unknown:
    raise InputError(
      f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}."
    )
  return list(names) or list(WORKLOADS)


def matmul_rate(n: int = 2048, repeats: int = 10, dtype: str = "float32") -> float:
  """FLOP/s of an ``n x n`` matmul in ``dtype`` through XLA on the default device."""
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32), dtype)
  b = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32), dtype)
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2.0 * n**3 / statistics.median(times)


def _flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 - not every backend implements it
    return None
  if isinstance(cost, list | tuple):
    cost = cost[0] if cost else {}
  flops = (cost or {}).get("flops")
  return float(flops) if flops is not None and flops > 0 else None


def time_workload(work: Workload, repeats: int = 5, warmup: int = 2) -> dict[str, Any]:
  """Compiles ``work.step`` once, then times ``repeats`` calls after ``warmup`` calls."""
  jitted = jax.jit(work.step, donate_argnums=work.donate)
  start = time.perf_counter()
  compiled = jitted.lower(*work.args).compile()
  compile_s = time.perf_counter() - start
  flops = _flops(compiled)
  args = work.args
  for _ in range(warmup):
    out = compiled(*args)
    jax.block_until_ready(out)
    args = work.carry(args, out)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    out = compiled(*args)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - start)
    args = work.carry(args, out)
  call_s = statistics.median(times)
  step_s = call_s / work.steps_per_call
  result = {
    "workload": work.name,
    "images_per_s": round(work.images_per_call / step_s, 2),
    "ms_per_step": round(1e3 * step_s, 2),
    "compile_s": round(compile_s, 1),
    "flops_per_step": None if flops is None else round(flops / work.steps_per_call),
    "repeats": repeats,
    "min_ms_per_step": round(1e3 * min(times) / work.steps_per_call, 2),
  }
  if work.notes:
    result["notes"] = work.notes
  return result


def run(
  names: Sequence[str] = (),
  repeats: int | None = None,
  matmul: float | None = None,
  kernel_choice: str = "auto",
  dtype: str = "float32",
  warmup: int = 2,
):
  """Measures the matmul rate, then each workload; yields one JSON-ready dict per line.

  ``kernel_choice`` is set (:func:`vision.ops.kernels.use`) before any workload is built;
  ``dtype`` is the models' computation dtype (parameters stay float32).
  """
  names = check_workloads(names)
  if dtype not in DTYPES:
    raise InputError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}.")
  if repeats is not None and repeats < 1:
    raise InputError(f"--repeats {repeats}: give at least 1 timed call, e.g. --repeats 5.")
  if warmup < 0:
    raise InputError(f"--warmup {warmup}: give 0 or more untimed calls, e.g. --warmup 2.")
  kernels.use(kernel_choice)
  rate = matmul if matmul else matmul_rate(dtype=dtype)
  yield {
    "workload": "matmul",
    "dtype": dtype,
    "gflops": round(rate / 1e9, 1),
    "backend": kernels.backend(),
    "devices": jax.device_count(),
    "jax": jax.__version__,
    "kernels": kernels.current(),
  }
  for name in names:
    work = BUILDERS[name](dtype=dtype)
    reps = repeats or (10 if name in ("dcgan", "vae") else 5)
    result = time_workload(work, repeats=reps, warmup=warmup)
    if result["flops_per_step"]:
      achieved = result["flops_per_step"] / (result["ms_per_step"] / 1e3)
      result["matmul_fraction"] = round(achieved / rate, 3)
    result["kernels"] = kernels.current()
    result["dtype"] = dtype
    yield result


def main(
  workloads: Sequence[str] = (),
  repeats: int | None = None,
  kernel_choice: str = "auto",
  dtype: str = "float32",
  warmup: int = 2,
):
  """Prints :func:`run`'s lines as JSON, one a line, as each is measured."""
  for line in run(workloads, repeats, kernel_choice=kernel_choice, dtype=dtype, warmup=warmup):
    print(json.dumps(line), flush=True)
