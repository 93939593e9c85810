"""Sweeps: one run per point of a config's ``get_sweep()`` (and per seed), and a summary table.

Each point is a dict of overrides applied on top of the base config (and of
any command-line overrides). A run whose workdir already holds
``results.json`` is skipped, so an interrupted sweep picks up where it stopped
(and a half-finished run resumes from its own checkpoint).

One seed (``seeds=1``, the default): point ``i`` runs once, with the config's
own ``seed``, in ``ROOT/<its overrides>``. ``ROOT/summary.csv`` has one row per
point with every final metric, ``ROOT/summary.md`` the headline metrics.

Several seeds (``seeds=N``): point ``i`` runs ``N`` times, with ``config.seed``
= ``b, b+1, ..., b+N-1`` where ``b`` is the seed of the point's config (0
unless ``--config.seed`` or the point sets it), each in
``ROOT/<its overrides>/seed_<s>``. The seed drives the initialization, the
order of the batches, the randomness of each step and the ``data.per_class``
subset, so the spread covers all of them. The summaries hold one row per point:

* ``summary.csv``: ``point``, the point's override columns, ``seeds`` (the
  seeds, ``;``-separated), ``finished`` (how many of them have results), then
  for every final metric ``M`` three columns: ``M_mean`` (mean over the finished
  seeds), ``M_std`` (sample standard deviation, ``n - 1`` in the denominator;
  empty with fewer than two values) and ``M_seeds`` (the per-seed values in
  the order of ``seeds``, ``;``-separated, empty for a seed without results);
  then ``status`` and ``workdir`` (the point's folder).
* ``summary.md``: the headline metrics as ``mean ± std [per-seed values]``.

Means and standard deviations come from the numbers of each seed's
``results.json`` at full precision; the Markdown table rounds them.
"""

from __future__ import annotations

import csv
import json
import os
import re
import traceback

import numpy as np

from vision import configs, validate
from vision.errors import ConfigError, InputError, UserError
from vision.train import loop

# Columns of a sweep's rows that are not metrics.
_BOOKKEEPING = ("point", "seed", "workdir", "status")


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


def check_seeds(seeds) -> int:
  """``seeds`` as a positive int; an InputError for 0, a negative number or a non-number."""
  if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
    raise InputError(
      f"--seeds {seeds}: give a positive number of seeds per point, e.g. --seeds 3 "
      "(--seeds 1 runs every point once, with the config's own seed)."
    )
  return seeds


def check_points(only: list[int] | None, count: int) -> None:
  """An InputError if ``only`` names a point the sweep does not have."""
  missing = [i for i in only or () if not 0 <= i < count]
  if missing:
    raise InputError(
      f"--points names point(s) {', '.join(map(str, missing))}, but the sweep has {count} "
      f"points; give indices from 0 to {count - 1}."
    )


def seeds_of(config, count: int, spec: str) -> list[int]:
  """The ``count`` seeds of a point: its config's ``seed`` and the ``count - 1`` after it."""
  if "seed" not in config:
    raise ConfigError(
      f"{spec}: the config has no 'seed' field, so --seeds cannot vary it; "
      "add config.seed (experiments/common.py base() does) or run with --seeds 1."
    )
  return [int(config.seed) + k for k in range(count)]


def _point_config(spec: str, overrides, point: dict, seed: int | None = None):
  config = configs.load_config(spec, overrides)
  configs.apply_overrides(config, point)
  if seed is not None:
    configs.apply_overrides(config, {"seed": seed})
  return config


def _run_one(label: str, point: dict, config, workdir: str) -> tuple[dict, str]:
  """The results and status of one run; a finished one is read back, not run again."""
  results_path = os.path.join(workdir, "results.json")
  if os.path.exists(results_path):
    print(f"[sweep] {label} {point}: already finished, skipping", flush=True)
    with open(results_path) as f:
      return json.load(f), "skipped (finished earlier)"
  print(f"[sweep] {label} {point} -> {workdir}", flush=True)
  try:
    return loop.run(config, workdir), "done"
  except UserError as e:  # one line, as the scripts print it; the other runs go on
    print(f"[sweep] {label}: error: {e}", flush=True)
    return {}, f"failed: {e}"[:300]
  except Exception as e:  # noqa: BLE001 - one failed run must not lose the others
    traceback.print_exc()
    return {}, f"failed: {type(e).__name__}: {str(e)[:200]}"


def run_sweep(
  spec: str, root: str, overrides=(), only: list[int] | None = None, seeds: int = 1
) -> list[dict]:
  """Runs the points of ``spec``'s ``get_sweep()`` (those in ``only``) under ``root``.

  Returns one flat row per run: ``point``, ``workdir``, the point's overrides,
  ``status`` and the run's results; with ``seeds > 1`` also ``seed``.
  """
  seeds = check_seeds(seeds)
  points = configs.load_sweep(spec)
  check_points(only, len(points))
  # Validate every point before spending compute on the first.
  planned = []
  for i, point in enumerate(points):
    config = _point_config(spec, overrides, point)
    folder = os.path.join(root, point_name(point))
    if seeds == 1:
      planned.append((i, point, None, config, folder))
      continue
    for seed in seeds_of(config, seeds, spec):
      config_s = _point_config(spec, overrides, point, seed)
      planned.append((i, point, seed, config_s, os.path.join(folder, f"seed_{seed}")))
  planned = [run for run in planned if only is None or run[0] in only]
  for i, point, seed, config, workdir in planned:
    try:
      validate.check(config, workdir, expect="train")
    except UserError as e:
      label = f"point {i} {point}" + ("" if seed is None else f" seed {seed}")
      raise type(e)(f"sweep {label}: {e}") from e
  keys = point_keys(points)
  rows = []
  os.makedirs(root, exist_ok=True)
  for i, point, seed, config, workdir in planned:
    label = f"point {i}" if seed is None else f"point {i} seed {seed}"
    results, status = _run_one(label, point, config, workdir)
    row = {"point": i, "workdir": os.path.relpath(workdir, root), **point, "status": status}
    if seed is not None:
      row["seed"] = seed
    rows.append({**row, **results})
    if seed is None:
      write_summary(root, rows, keys)
    else:
      write_seed_summary(root, rows, keys)
  return rows


def _fmt(value) -> str:
  if isinstance(value, float):
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
  return str(value)


def _headline(metric_keys: list[str]) -> list[str]:
  """The metrics of ``summary.md``: test figures, the GAN's distances, the training time."""
  return [
    k
    for k in metric_keys
    if "/" not in k
    and (
      k.startswith("test_")
      or k in ("fd", "fd_real_baseline", "class_entropy_bits", "train_seconds")
    )
  ]


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
  md_columns = [*point_keys, *_headline(metric_keys), "status"]
  md_path = os.path.join(root, "summary.md")
  with open(md_path, "w") as f:
    f.write("| " + " | ".join(md_columns) + " |\n")
    f.write("|" + "---|" * len(md_columns) + "\n")
    for row in rows:
      f.write("| " + " | ".join(_fmt(row.get(k, "")) for k in md_columns) + " |\n")
  return csv_path, md_path


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_std(values: list) -> tuple[float | None, float | None]:
  """Mean and sample standard deviation (``ddof=1``) of the numbers in ``values``.

  Missing values (``None``) and non-numbers are left out; the mean is None
  without numbers, the standard deviation None with fewer than two.
  """
  numbers = [float(v) for v in values if _is_number(v)]
  mean = float(np.mean(numbers)) if numbers else None
  std = float(np.std(numbers, ddof=1)) if len(numbers) > 1 else None
  return mean, std


def metric_keys_of(rows: list[dict], point_keys: list[str]) -> list[str]:
  """The metrics of ``rows``: every key that is neither an override nor bookkeeping, sorted."""
  return sorted({k for r in rows for k in r} - set(point_keys) - set(_BOOKKEEPING))


def aggregate_seeds(rows: list[dict], point_keys: list[str]) -> list[dict]:
  """One row per point from the per-seed rows of :func:`run_sweep`.

  A row holds ``point``, the point's overrides, ``seeds`` and ``finished``,
  and for every metric ``M`` of any row: ``M_mean``, ``M_std`` (None where
  undefined) and ``M_seeds`` (the per-seed values, None for a seed without
  that metric), then ``status`` (the common status of the seeds, or each
  seed's) and ``workdir`` (the point's folder).
  """
  metric_keys = metric_keys_of(rows, point_keys)
  by_point: dict[int, list[dict]] = {}
  for row in rows:
    by_point.setdefault(row["point"], []).append(row)
  out = []
  for i, runs in by_point.items():
    first = runs[0]
    agg = {"point": i, **{k: first[k] for k in point_keys if k in first}}
    agg["seeds"] = [r["seed"] for r in runs]
    agg["finished"] = sum(1 for r in runs if not str(r["status"]).startswith("failed"))
    for key in metric_keys:
      values = [r.get(key) for r in runs]
      agg[f"{key}_mean"], agg[f"{key}_std"] = mean_std(values)
      agg[f"{key}_seeds"] = values
    statuses = [str(r["status"]) for r in runs]
    if len(set(statuses)) == 1:
      agg["status"] = statuses[0]
    else:
      agg["status"] = "; ".join(f"seed {r['seed']}: {s}" for r, s in zip(runs, statuses))
    agg["workdir"] = os.path.dirname(first["workdir"])
    out.append(agg)
  return out


def _cell(value) -> str:
  return "" if value is None else str(value)


def _md_cell(mean, std, values) -> str:
  if mean is None:
    return ""
  per_seed = ", ".join("–" if v is None else _fmt(v) for v in values)
  spread = f" ± {_fmt(std)}" if std is not None else ""
  return f"{_fmt(mean)}{spread} [{per_seed}]"


def write_seed_summary(root: str, rows: list[dict], point_keys: list[str]) -> tuple[str, str]:
  """Writes ``summary.csv`` and ``summary.md`` of a sweep with several seeds per point.

  ``rows`` are the per-seed rows of :func:`run_sweep`; the files hold one row
  per point with the mean, the sample standard deviation and the per-seed
  values of every metric (the module docstring gives the columns).
  """
  points = aggregate_seeds(rows, point_keys)
  metric_keys = metric_keys_of(rows, point_keys)
  metric_columns = [f"{k}_{part}" for k in metric_keys for part in ("mean", "std", "seeds")]
  columns = ["point", *point_keys, "seeds", "finished", *metric_columns, "status", "workdir"]
  csv_path = os.path.join(root, "summary.csv")
  with open(csv_path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    for agg in points:
      out = {}
      for key in columns:
        value = agg.get(key)
        if key == "seeds" or key.endswith("_seeds"):
          out[key] = ";".join(_cell(v) for v in value or ())
        else:
          out[key] = _cell(value)
      writer.writerow(out)
  headline = _headline(metric_keys)
  md_columns = [*point_keys, "seeds", *headline, "status"]
  md_path = os.path.join(root, "summary.md")
  with open(md_path, "w") as f:
    f.write(
      "Mean ± sample standard deviation (n - 1) over each point's seeds; "
      "the per-seed values in brackets, in the order of `seeds`.\n\n"
    )
    f.write("| " + " | ".join(md_columns) + " |\n")
    f.write("|" + "---|" * len(md_columns) + "\n")
    for agg in points:
      cells = [_fmt(agg.get(k, "")) for k in point_keys]
      cells.append(", ".join(map(str, agg["seeds"])))
      for key in headline:
        cells.append(_md_cell(agg.get(f"{key}_mean"), agg.get(f"{key}_std"), agg[f"{key}_seeds"]))
      cells.append(agg["status"])
      f.write("| " + " | ".join(cells) + " |\n")
  return csv_path, md_path


def parse_points(text: str) -> list[int] | None:
  """``'0,2'`` -> ``[0, 2]``; ``''`` -> None (every point)."""
  try:
    return [int(p) for p in text.split(",") if p.strip()] or None
  except ValueError as e:
    raise InputError(f"--points {text!r}: give comma-separated point indices like 0,2.") from e


def main(spec: str, root: str, overrides=(), points: str = "", seeds: int = 1) -> list[dict]:
  """Runs the sweep, prints ``summary.md``; a UserError if any run failed."""
  rows = run_sweep(spec, root, overrides, parse_points(points), seeds)
  with open(os.path.join(root, "summary.md")) as f:
    print(f.read())
  if any(str(r["status"]).startswith("failed") for r in rows):
    raise UserError("some sweep points failed; see the log above and summary.csv.")
  return rows
