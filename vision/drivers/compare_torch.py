"""Interleaved JAX-vs-PyTorch pairs of the benchmark workloads, for a machine whose speed drifts.

On the project's shared 2-core machines the speed moves by tens of percent
within minutes (docs/performance.md), so one run of each side can land in
different moments. Each round runs, per workload, ``bench_torch.py WORKLOAD``
and ``scripts/benchmark.py WORKLOAD`` back to back in fresh processes (their
order alternates between rounds), prints both JSON lines and the ratio, and
the end prints every workload's ratios and their median.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vision.drivers.benchmark import check_workloads
from vision.errors import InputError, UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARK_SCRIPT = REPO_ROOT / "scripts" / "benchmark.py"


def _last_json(cmd: list[str]) -> dict:
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
  if out.returncode != 0:
    raise UserError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
  lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
  return json.loads(lines[-1])


def run(
  reference: str, workloads: Sequence[str] = (), rounds: int = 3, kernel_choice: str = "auto"
):
  """Prints one JSON line per pair, then one per workload with its ratios and their median."""
  names = check_workloads(workloads)
  reference = Path(reference).resolve()
  if not reference.is_file():
    raise InputError(f"no bench_torch.py at {reference}.")
  ratios = {name: [] for name in names}
  for r in range(rounds):
    for name in names:
      torch_cmd = [sys.executable, str(reference), name]
      jax_cmd = [sys.executable, str(BENCHMARK_SCRIPT), "--kernels", kernel_choice, name]
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
