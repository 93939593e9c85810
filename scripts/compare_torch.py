"""Interleaved JAX-vs-PyTorch pairs of the benchmark workloads, for a machine whose speed drifts.

    python scripts/compare_torch.py --reference ../shared/reference/bench_torch.py
    python scripts/compare_torch.py --reference PATH --rounds 5 vae dcgan

Each round runs, per workload, ``bench_torch.py WORKLOAD`` and
``scripts/benchmark.py WORKLOAD`` back to back in fresh processes (their order
alternates between rounds), prints both JSON lines and the ratio; the end
prints every workload's ratios and their median. The run is
:mod:`vision.drivers.compare_torch`.
"""

import sys

from vision import cli
from vision.drivers import compare_torch


def main(argv=None):
  parser = cli.argument_parser(__doc__)
  parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="dcgan, vae, finetune, pgd")
  parser.add_argument("--reference", required=True, help="path to bench_torch.py")
  parser.add_argument("--rounds", type=int, default=3)
  cli.add_kernels_flag(parser)
  compare_torch.run(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
