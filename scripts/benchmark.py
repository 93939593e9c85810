"""Times the four workloads of shared/reference/BENCHMARKS.md with the project's own steps.

    python scripts/benchmark.py                 # matmul rate, then dcgan vae finetune pgd
    python scripts/benchmark.py dcgan pgd       # a subset
    python scripts/benchmark.py --repeats 20 vae

Prints one JSON line per workload (images_per_s, ms_per_step, compile_s,
flops_per_step, matmul_fraction); compare with
``python ../shared/reference/bench_torch.py`` run in the same session.
What each workload is: vision/benchmark.py; the measurements: docs/performance.md.
"""

import argparse
import sys

from vision import cli


def main(argv=None):
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="dcgan, vae, finetune, pgd")
  parser.add_argument("--repeats", type=int, default=None, help="timed calls per workload")
  args = parser.parse_args(argv)
  from vision import benchmark

  unknown = [w for w in args.workloads if w not in benchmark.WORKLOADS]
  if unknown:
    raise cli.UserError(
      f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(benchmark.WORKLOADS)}."
    )
  benchmark.main(args.workloads, args.repeats)


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
