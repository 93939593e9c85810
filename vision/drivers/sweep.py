"""Sweeps: one run per point of a config's ``get_sweep()``, and a summary table.

Each point is a dict of overrides applied on top of the base config (and of
any command-line overrides). Point ``i`` runs in ``ROOT/<its overrides>``; a
point whose workdir already holds ``results.json`` is skipped, so an
interrupted sweep picks up where it stopped (and a half-finished point resumes
from its own checkpoint).
"""

from __future__ import annotations

import csv
import json
import os
import re
import traceback

from vision import configs
from vision.errors import InputError, UserError
from vision.train import loop


def point_name(point: dict) -> str:
  """A point's folder name: ``'dropout=0.5_lr=0.01'`` (last part of each key)."""
  parts = []
  for key, value in point.items():
    value = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
    parts.append(f"{key.split('.')[-1]}={value}")
  return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", "_".join(parts)) or "base"


def point_keys(points: list[dict]) -> list[str]:
  """Every key that any point overrides, in first-seen order (the table's columns)."""
  return list(dict.fromkeys(key for point in points for key in point))


def run_sweep(spec: str, root: str, overrides=(), only: list[int] | None = None) -> list[dict]:
  """Runs the points of ``spec``'s ``get_sweep()`` (those in ``only``) under ``root``; the rows."""
  points = configs.load_sweep(spec)
  # Validate every point before spending compute on the first.
  planned = []
  for i, point in enumerate(points):
    config = configs.load_config(spec, overrides)
    configs.apply_overrides(config, point)
    planned.append((i, point, config))
  rows = []
  os.makedirs(root, exist_ok=True)
  for i, point, config in planned:
    if only is not None and i not in only:
      continue
    workdir = os.path.join(root, point_name(point))
    results_path = os.path.join(workdir, "results.json")
    status = "done"
    if os.path.exists(results_path):
      print(f"[sweep] point {i} {point}: already finished, skipping", flush=True)
      with open(results_path) as f:
        results = json.load(f)
      status = "skipped (finished earlier)"
    else:
      print(f"[sweep] point {i} {point} -> {workdir}", flush=True)
      try:
        results = loop.run(config, workdir)
      except Exception as e:  # noqa: BLE001 - one failed point must not lose the others
        traceback.print_exc()
        results, status = {}, f"failed: {type(e).__name__}: {str(e)[:200]}"
    rows.append(
      {"point": i, "workdir": os.path.relpath(workdir, root), **point, "status": status, **results}
    )
    write_summary(root, rows, point_keys(points))
  return rows


def _fmt(value) -> str:
  if isinstance(value, float):
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
  return str(value)


def write_summary(root: str, rows: list[dict], point_keys: list[str]) -> tuple[str, str]:
  """Writes ``summary.csv`` (every metric) and ``summary.md`` (headline metrics)."""
  metric_keys = sorted(
    {k for r in rows for k in r} - set(point_keys) - {"point", "workdir", "status"}
  )
  columns = ["point", *point_keys, *metric_keys, "status", "workdir"]
  csv_path = os.path.join(root, "summary.csv")
  with open(csv_path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    for row in rows:
      writer.writerow({k: row.get(k, "") for k in columns})
  headline = [
    k
    for k in metric_keys
    if "/" not in k
    and (
      k.startswith("test_")
      or k in ("fd", "fd_real_baseline", "class_entropy_bits", "train_seconds")
    )
  ]
  md_columns = [*point_keys, *headline, "status"]
  md_path = os.path.join(root, "summary.md")
  with open(md_path, "w") as f:
    f.write("| " + " | ".join(md_columns) + " |\n")
    f.write("|" + "---|" * len(md_columns) + "\n")
    for row in rows:
      f.write("| " + " | ".join(_fmt(row.get(k, "")) for k in md_columns) + " |\n")
  return csv_path, md_path


def parse_points(text: str) -> list[int] | None:
  """``'0,2'`` -> ``[0, 2]``; ``''`` -> None (every point)."""
  try:
    return [int(p) for p in text.split(",") if p.strip()] or None
  except ValueError as e:
    raise InputError(f"--points {text!r}: give comma-separated point indices like 0,2.") from e


def main(spec: str, root: str, overrides=(), points: str = "") -> list[dict]:
  """Runs the sweep, prints ``summary.md``; a UserError if any point failed."""
  rows = run_sweep(spec, root, overrides, parse_points(points))
  with open(os.path.join(root, "summary.md")) as f:
    print(f.read())
  if any(str(r["status"]).startswith("failed") for r in rows):
    raise UserError("some sweep points failed; see the log above and summary.csv.")
  return rows
