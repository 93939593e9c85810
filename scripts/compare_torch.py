"""Interleaved JAX-vs-PyTorch pairs of the benchmark workloads, for a machine whose speed drifts.

    python scripts/compare_torch.py --reference ../shared/reference/bench_torch.py
    python scripts/compare_torch.py --reference PATH --rounds 5 vae dcgan

On the project's shared 2-core machines the speed moves by tens of percent
within minutes (docs/performance.md), so one run of each side can land in
different moments. Each round runs, per workload, ``bench_torch.py WORKLOAD``
and ``scripts/benchmark.py WORKLOAD`` back to back in fresh processes (their
order alternates between rounds), prints both JSON lines and the ratio, and
the end prints every workload's ratios and their median.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from vision import cli

ROOT = Path(__file__).resolve().parent.parent


def _last_json(cmd: list[str]) -> dict:
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  if out.returncode != 0:
    raise cli.UserError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
  lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
  return json.loads(lines[-1])


def main(argv=None):
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="dcgan, vae, finetune, pgd")
  parser.add_argument("--reference", required=True, help="path to bench_torch.py")
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args(argv)
  from vision import benchmark

  names = args.workloads or list(benchmark.WORKLOADS)
  unknown = [w for w in names if w not in benchmark.WORKLOADS]
  if unknown:
    raise cli.UserError(f"unknown workload(s) {', '.join(unknown)}.")
  reference = Path(args.reference).resolve()
  if not reference.is_file():
    raise cli.UserError(f"no bench_torch.py at {reference}.")
  ratios = {name: [] for name in names}
  for r in range(args.rounds):
    for name in names:
      torch_cmd = [sys.executable, str(reference), name]
      jax_cmd = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), name]
      order = [("torch", torch_cmd), ("jax", jax_cmd)]
      if r % 2:
        order.reverse()
      results = {side: _last_json(cmd) for side, cmd in order}
      ratio = results["jax"]["images_per_s"] / results["torch"]["images_per_s"]
      ratios[name].append(ratio)
      line = {
        "round": r + 1,
        "workload": name,
        "jax_images_per_s": results["jax"]["images_per_s"],
        "torch_images_per_s": results["torch"]["images_per_s"],
        "ratio": round(ratio, 3),
        "compile_s": results["jax"].get("compile_s"),
      }
      print(json.dumps(line), flush=True)
  for name, values in ratios.items():
    summary = {
      "workload": name,
      "ratios": [round(v, 3) for v in values],
      "median_ratio": round(statistics.median(values), 3),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
