"""Inference throughput of a backbone on this machine (eval mode, random images).

    python scripts/backbone_throughput.py --model efficientnet_lite0 --batch 32 --size 224

Random weights of the right shapes (throughput does not depend on values),
float32, random inputs, compile and one warm-up step excluded, the median of
``--repeats`` timed steps each ended with ``block_until_ready``. Prints one
JSON line per form of the operations (``--kernels``, :mod:`vision.ops.kernels`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


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
  args = parser.parse_args(argv)

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
    step = statistics.median(times)
    print(
      json.dumps(
        {
          "model": args.model,
          "kernels": form,
          "batch": args.batch,
          "size": args.size,
          "images_per_s": round(args.batch / step, 2),
          "ms_per_step": round(step * 1e3, 1),
          "compile_s": round(compile_s, 1),
          "backend": kernels.backend(),
          "devices": jax.device_count(),
          "repeats": args.repeats,
        }
      ),
      flush=True,
    )


if __name__ == "__main__":
  main()
