"""Interleaved JAX-vs-PyTorch pairs of the benchmark workloads, for a machine whose speed drifts.

On the project's shared 2-core machines the speed moves by tens of percent
within minutes (docs/performance.md), so one run of each side can land in
different moments. Each round runs, per workload, the PyTorch reference
``REFERENCE WORKLOAD`` and ``scripts/benchmark.py WORKLOAD`` back to back in
fresh processes (their order alternates between rounds), prints both JSON
lines and the ratio, and the end prints every workload's ratios and their
median. The reference is by default the project's own ``scripts/bench_torch.py``
(:mod:`torch_reference.workloads`, the ``torch`` extra); any script that takes
workload names and prints the same JSON lines can replace it. ``repeats`` and
``dtype`` go to both sides. This module imports no PyTorch: the reference runs
in its own process, and a reference that fails with an ``error:`` line (PyTorch
missing, say) ends the comparison with that line.
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
REFERENCE_SCRIPT = REPO_ROOT / "scripts" / "bench_torch.py"
DTYPES = ("float32", "bfloat16")


def _last_json(cmd: list[str]) -> dict:
  """The last JSON line ``cmd`` prints; its ``error:`` line, or its stderr, if it fails."""
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
  if out.returncode != 0:
    last = (out.stderr.strip().splitlines() or [""])[-1]
    if out.returncode == 2 and last.startswith("error: "):
      raise UserError(f"{Path(cmd[1]).name} {cmd[-1]}: {last[len('error: ') :]}")
    raise UserError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
  lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
  if not lines:
    raise UserError(f"{' '.join(cmd)} printed no JSON line.")
  return json.loads(lines[-1])


def run(
  reference: str | None = None,
  workloads: Sequence[str] = (),
  rounds: int = 3,
  kernel_choice: str = "auto",
  repeats: int | None = None,
  dtype: str = "float32",
):
  """Prints one JSON line per pair, then one per workload with its ratios and their median.

  ``reference`` is the PyTorch script (default :data:`REFERENCE_SCRIPT`);
  ``repeats`` (timed calls, each side's default when None) and ``dtype`` are
  passed to both sides (``--dtype`` only when it is not float32).
  """
  names = check_workloads(workloads)
  if rounds < 1:
    raise InputError(f"--rounds {rounds}: give at least 1 round, e.g. --rounds 3.")
  if dtype not in DTYPES:
    raise InputError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}.")
  reference = Path(reference).resolve() if reference else REFERENCE_SCRIPT
  if not reference.is_file():
    raise InputError(
      f"no reference script at {reference}; give an existing PyTorch benchmark script with "
      "--reference PATH, "
      "or leave out --reference for scripts/bench_torch.py."
    )
  flags = [] if repeats is None else ["--repeats", str(repeats)]
  if dtype != "float32":
    flags += ["--dtype", dtype]
  ratios = {name: [] for name in names}
  for r in range(rounds):
    for name in names:
      torch_cmd = [sys.executable, str(reference), *flags, name]
      jax_cmd = [sys.executable, str(BENCHMARK_SCRIPT), "--kernels", kernel_choice, *flags, name]
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
