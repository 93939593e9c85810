"""Times the four speed workloads (dcgan, vae, finetune, pgd) with the project's own steps.

    python scripts/benchmark.py                 # matmul rate, then dcgan vae finetune pgd
    python scripts/benchmark.py dcgan pgd       # a subset
    python scripts/benchmark.py --repeats 20 vae
    python scripts/benchmark.py --kernels portable vae   # the portable forms on the CPU
    python scripts/benchmark.py --dtype bfloat16         # bfloat16 computation, float32 parameters

Prints one JSON line per workload (images_per_s, ms_per_step, compile_s,
flops_per_step, matmul_fraction, kernels); compare with
``python scripts/bench_torch.py`` (PyTorch, the ``torch`` extra) on the same machine
(scripts/compare_torch.py interleaves the two). What each workload is:
vision/drivers/benchmark.py; the measurements: docs/performance.md.
"""

import sys

from vision import cli
from vision.drivers import benchmark


def main(argv=None):
  parser = cli.argument_parser(__doc__)
  parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="dcgan, vae, finetune, pgd")
  parser.add_argument("--repeats", type=int, default=None, help="timed calls per workload")
  parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
  cli.add_kernels_flag(parser)
  parser.add_argument(
    "--dtype",
    choices=benchmark.DTYPES,
    default="float32",
    help="the models' computation dtype (parameters stay float32)",
  )
  benchmark.main(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
