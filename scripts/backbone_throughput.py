"""Inference throughput of a backbone on this machine (eval mode, random images).

    python scripts/backbone_throughput.py --model efficientnet_lite0 --batch 32 --size 224

Random weights of the right shapes (throughput does not depend on values),
float32, random inputs, compile and one warm-up step excluded, the median of
``--repeats`` timed steps each ended with ``block_until_ready``. Prints one
JSON line per form of the operations (``--kernels``, :mod:`vision.ops.kernels`), and with
``--torch`` one more for the project's PyTorch EfficientNet-Lite0
(torch_reference/efficientnet_lite0.py, eval mode, ``torch.no_grad``, PyTorch's default
thread count), timed the same way: ``pip install -e .[torch]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--model", default="efficientnet_lite0")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument(
    "--kernels",
    nargs="+",
    default=["portable", "cpu"],
    choices=("portable", "cpu"),
    help="forms of the operations to time (vision/ops/kernels.py)",
  )
  parser.add_argument(
    "--torch",
    action="store_true",
    help="also time the PyTorch reference network (efficientnet_lite0 only)",
  )
  args = parser.parse_args(argv)
  if args.torch and args.model != "efficientnet_lite0":
    parser.error("--torch: the PyTorch reference network is efficientnet_lite0 only")
  if args.batch < 1 or args.size < 32 or args.repeats < 1:
    parser.error("--batch and --repeats must be positive and --size at least 32")

  from vision.ops import kernels

  kernels.apply_xla_cpu_defaults()  # before JAX starts its backend, as every entry point

  import jax
  import jax.numpy as jnp
  import numpy as np

  from vision.models.registry import create_model

  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((args.batch, args.size, args.size, 3), dtype=np.float32))
  model = create_model(args.model)
  shapes = jax.eval_shape(model.init, jax.random.key(0), images[:1])
  variables = jax.tree.map(
    lambda s: jnp.asarray(rng.normal(0, 0.05, s.shape).astype(np.float32)), shapes
  )
  variables["batch_stats"] = jax.tree.map(jnp.abs, variables["batch_stats"])
  for form in args.kernels:
    # The form is read when the function is traced: a fresh jitted function per form.
    with kernels.use(form):
      forward = jax.jit(lambda v, x: model.apply(v, x)[0])
      start = time.perf_counter()
      forward(variables, images).block_until_ready()  # compile
      compile_s = time.perf_counter() - start
    forward(variables, images).block_until_ready()  # warm-up
    times = []
    for _ in range(args.repeats):
      start = time.perf_counter()
      forward(variables, images).block_until_ready()
      times.append(time.perf_counter() - start)
    extra = {"backend": kernels.backend(), "devices": jax.device_count()}
    report(args, {"kernels": form}, times, compile_s, extra)
  if args.torch:
    time_torch(args, rng)


def report(args, form: dict, times: list[float], compile_s: float, extra: dict) -> None:
  step = statistics.median(times)
  line = {
    "model": args.model,
    **form,
    "batch": args.batch,
    "size": args.size,
    "images_per_s": round(args.batch / step, 2),
    "ms_per_step": round(step * 1e3, 1),
    "compile_s": round(compile_s, 1),
    **extra,
    "repeats": args.repeats,
  }
  print(json.dumps(line), flush=True)


def time_torch(args, rng) -> None:
  """The same forward pass in PyTorch (NCHW, the input mapping included), random weights."""
  try:
    import torch
  except ImportError as e:
    print(f"error: --torch needs PyTorch ({e}); pip install -e .[torch]", file=sys.stderr)
    raise SystemExit(2) from None
  import numpy as np

  if ROOT not in sys.path:
    sys.path.append(ROOT)
  from torch_reference.efficientnet_lite0 import EfficientNetLite0
  from torch_reference.workloads import lite_input

  torch.manual_seed(0)
  model = EfficientNetLite0().eval()
  images = torch.from_numpy(rng.random((args.batch, 3, args.size, args.size), dtype=np.float32))

  def forward():
    with torch.no_grad():
      return model(lite_input(images))

  start = time.perf_counter()
  forward()  # the first call (allocations), reported as compile_s
  compile_s = time.perf_counter() - start
  forward()  # warm-up
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    forward()
    times.append(time.perf_counter() - start)
  extra = {"backend": "cpu", "torch": torch.__version__, "threads": torch.get_num_threads()}
  report(args, {"framework": "torch"}, times, compile_s, extra)


if __name__ == "__main__":
  main()
