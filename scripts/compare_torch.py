"""Interleaved JAX-vs-PyTorch pairs of the benchmark workloads, for a machine whose speed drifts.

    python scripts/compare_torch.py                        # every workload, 3 rounds
    python scripts/compare_torch.py --rounds 5 vae dcgan
    python scripts/compare_torch.py --repeats 3 --dtype bfloat16 finetune
    python scripts/compare_torch.py --reference PATH/other_bench.py vae

Each round runs, per workload, the PyTorch reference (default
``scripts/bench_torch.py``, the project's own PyTorch implementation in
``torch_reference/workloads.py``; it needs the torch extra,
``pip install -e .[torch]``) and ``scripts/benchmark.py WORKLOAD`` back to back
in fresh processes (their order alternates between rounds), prints both JSON
lines and the ratio; the end prints every workload's ratios and their median.
``--repeats`` and ``--dtype`` go to both sides. The run is
:mod:`vision.drivers.compare_torch`.
"""

import sys

from vision import cli
from vision.drivers import compare_torch


def main(argv=None):
  parser = cli.argument_parser(__doc__)
  parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="dcgan, vae, finetune, pgd")
  parser.add_argument(
    "--reference",
    default=None,
    help="a PyTorch benchmark script (default: scripts/bench_torch.py of this repository)",
  )
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument(
    "--repeats", type=int, default=None, help="timed calls per workload, both sides"
  )
  parser.add_argument(
    "--dtype",
    choices=compare_torch.DTYPES,
    default="float32",
    help="computation dtype of both sides (parameters stay float32)",
  )
  cli.add_kernels_flag(parser)
  compare_torch.run(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
