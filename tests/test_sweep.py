"""Sweeps: a workdir per point (and seed), summaries with mean ± std, finished runs skipped."""

import csv
import importlib.util
import json
import os

import numpy as np
import pytest

from tests.conftest import ROOT, run_script
from vision.drivers.sweep import main as sweep_main
from vision.drivers.sweep import point_keys, run_sweep, write_seed_summary, write_summary
from vision.errors import ConfigError, InputError, UserError


def sweep_script(capsys, *args) -> str:
  """``python scripts/sweep.py ARGS`` in this process (the runs share its compiled programs);
  returns what it printed."""
  path = os.path.join(ROOT, "scripts", "sweep.py")
  spec = importlib.util.spec_from_file_location("sweep_script", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  capsys.readouterr()
  module.main(list(args))
  return capsys.readouterr().out


@pytest.mark.slow
def test_two_point_sweep_writes_summary_and_skips_finished(data_env, tmp_path, capsys):
  root = tmp_path / "sweep"
  args = [
    "--config",
    "experiments/cnn_fashion_mnist.py:tiny",
    "--workdir",
    str(root),
    "--points",
    "0,2",
    "--config.num_steps=6",
    "--config.eval_every=0",
  ]
  out = sweep_script(capsys, *args)
  assert sorted(os.listdir(root)) == ["dropout=0.0", "dropout=0.5", "summary.csv", "summary.md"]
  rows = list(csv.DictReader(open(root / "summary.csv")))
  assert [float(r["model.dropout"]) for r in rows] == [0.0, 0.5]
  for row in rows:
    assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and row["status"] == "done"
  table = (root / "summary.md").read_text()
  assert table.startswith("| model.dropout | test_accuracy |") and table.count("\n") == 4
  assert "| model.dropout |" in out

  # Started again (e.g. after an interruption), finished points are not re-run.
  mtime = os.path.getmtime(root / "dropout=0.0" / "results.json")
  out = sweep_script(capsys, *args)
  assert "already finished, skipping" in out
  assert os.path.getmtime(root / "dropout=0.0" / "results.json") == mtime
  rows = list(csv.DictReader(open(root / "summary.csv")))
  assert all(r["status"].startswith("skipped") for r in rows)


def test_summary_has_a_column_for_every_point_key(tmp_path):
  points = [{"mode": "scratch"}, {"mode": "scratch", "aug.mixup": 0.4}]
  assert point_keys(points) == ["mode", "aug.mixup"]

  rows = [
    {"point": 0, "workdir": "a", "mode": "scratch", "status": "done", "test_accuracy": 0.5},
    {"point": 1, "workdir": "b", "mode": "scratch", "aug.mixup": 0.4, "status": "done"},
  ]
  _, md = write_summary(str(tmp_path), rows, point_keys(points))
  lines = open(md).read().splitlines()
  assert lines[0] == "| mode | aug.mixup | test_accuracy | status |"
  assert (
    lines[2] == "| scratch |  | 0.5000 | done |" and lines[3] == "| scratch | 0.4000 |  | done |"
  )


SEED_ARGS = [
  "--config",
  "experiments/cnn_fashion_mnist.py:tiny",
  "--points",
  "0,2",
  "--seeds",
  "3",
  "--config.num_steps=4",
  "--config.eval_every=0",
]


def _floats(cell: str) -> list[float]:
  return [float(v) for v in cell.split(";")]


@pytest.mark.slow
def test_seeds_give_mean_std_and_per_seed_values(data_env, tmp_path, capsys):
  root = tmp_path / "sweep"
  out = sweep_script(capsys, *SEED_ARGS, "--workdir", str(root))
  points = ["dropout=0.0", "dropout=0.5"]
  assert sorted(os.listdir(root)) == [*points, "summary.csv", "summary.md"]
  per_seed = {}
  for name in points:
    assert sorted(os.listdir(root / name)) == ["seed_0", "seed_1", "seed_2"]
    for seed in (0, 1, 2):
      config = json.loads((root / name / f"seed_{seed}" / "config.json").read_text())
      assert config["seed"] == seed and config["num_steps"] == 4
    per_seed[name] = [
      json.loads((root / name / f"seed_{s}" / "results.json").read_text()) for s in (0, 1, 2)
    ]

  rows = list(csv.DictReader(open(root / "summary.csv")))
  assert [float(r["model.dropout"]) for r in rows] == [0.0, 0.5]
  table = (root / "summary.md").read_text()
  for row, name in zip(rows, points):
    assert row["seeds"] == "0;1;2" and row["finished"] == "3" and row["status"] == "done"
    assert row["workdir"] == name
    results = per_seed[name]
    for metric in ("test_accuracy", "test_loss"):
      values = [r[metric] for r in results]
      assert _floats(row[f"{metric}_seeds"]) == values
      mean, std = np.mean(values), np.std(values, ddof=1)
      assert float(row[f"{metric}_mean"]) == pytest.approx(mean, rel=1e-12)
      assert float(row[f"{metric}_std"]) == pytest.approx(std, rel=1e-12)
      cell = f"{mean:.4f} ± {std:.4f} [{', '.join(f'{v:.4f}' for v in values)}]"
      assert cell in table, (cell, table)
    # The seeds really differ: different initializations and batches, different results.
    assert len({r["test_loss"] for r in results}) == 3
  assert "| model.dropout | seeds | test_accuracy |" in table
  assert "| model.dropout | seeds |" in out

  # Started again, every finished (point, seed) run is skipped, and the summary is the same.
  mtime = os.path.getmtime(root / "dropout=0.5" / "seed_1" / "results.json")
  out = sweep_script(capsys, *SEED_ARGS, "--workdir", str(root))
  assert out.count("already finished, skipping") == 6
  assert os.path.getmtime(root / "dropout=0.5" / "seed_1" / "results.json") == mtime
  again = list(csv.DictReader(open(root / "summary.csv")))
  assert all(r["status"] == "skipped (finished earlier)" for r in again)
  strip = lambda r: {k: v for k, v in r.items() if k != "status"}  # noqa: E731
  assert [strip(r) for r in again] == [strip(r) for r in rows]


def test_seed_summary_aggregates_each_point(tmp_path):
  rows = [
    {"point": 0, "seed": 3, "workdir": "a/seed_3", "mode": "x", "status": "done", "acc": 0.5},
    {"point": 0, "seed": 4, "workdir": "a/seed_4", "mode": "x", "status": "done", "acc": 0.7},
    {"point": 0, "seed": 5, "workdir": "a/seed_5", "mode": "x", "status": "done", "acc": 0.9},
    {"point": 1, "seed": 3, "workdir": "b/seed_3", "mode": "y", "status": "done", "acc": 0.25},
    {"point": 1, "seed": 4, "workdir": "b/seed_4", "mode": "y", "status": "failed: boom"},
  ]
  csv_path, md_path = write_seed_summary(str(tmp_path), rows, ["mode"])
  out = list(csv.DictReader(open(csv_path)))
  assert list(out[0]) == [
    "point", "mode", "seeds", "finished", "acc_mean", "acc_std", "acc_seeds", "status", "workdir"
  ]  # fmt: skip
  assert out[0]["seeds"] == "3;4;5" and out[0]["finished"] == "3" and out[0]["workdir"] == "a"
  assert float(out[0]["acc_mean"]) == pytest.approx(0.7)
  assert float(out[0]["acc_std"]) == pytest.approx(0.2)  # sample std (n - 1), not 0.163
  assert out[0]["acc_seeds"] == "0.5;0.7;0.9" and out[0]["status"] == "done"
  # One finished seed: a mean, no spread; the failed seed is named.
  assert out[1]["acc_mean"] == "0.25" and out[1]["acc_std"] == "" and out[1]["acc_seeds"] == "0.25;"
  assert out[1]["finished"] == "1"
  assert out[1]["status"] == "seed 3: done; seed 4: failed: boom"
  lines = open(md_path).read().splitlines()
  assert lines[2] == "| mode | seeds | status |"  # 'acc' is no headline metric
  rows = [{**r, "test_acc": r["acc"]} if "acc" in r else r for r in rows]
  _, md_path = write_seed_summary(str(tmp_path), rows, ["mode"])
  lines = open(md_path).read().splitlines()
  assert lines[4] == "| x | 3, 4, 5 | 0.7000 ± 0.2000 [0.5000, 0.7000, 0.9000] | done |"
  assert lines[5].startswith("| y | 3, 4 | 0.2500 [0.2500, –] | seed 3: done;")


TINY = "experiments/cnn_fashion_mnist.py:tiny"


@pytest.mark.parametrize("seeds", [0, -2])
def test_seeds_must_be_positive(tmp_path, seeds):
  root = tmp_path / "sweep"
  with pytest.raises(InputError, match=f"--seeds {seeds}: give a positive number.*--seeds 3"):
    run_sweep(TINY, str(root), seeds=seeds)
  assert not root.exists()


def test_points_must_exist(tmp_path):
  root = tmp_path / "sweep"
  with pytest.raises(InputError, match="--points names point.s. 7, but the sweep has 4 .*0 to 3"):
    run_sweep(TINY, str(root), only=[0, 7])
  assert not root.exists()


@pytest.mark.slow
def test_bad_seeds_is_one_error_line(tmp_path):
  root = tmp_path / "sweep"
  proc = run_script("sweep.py", "--config", TINY, "--workdir", str(root), "--seeds", "0")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert errors == [
    "error: --seeds 0: give a positive number of seeds per point, e.g. --seeds 3 "
    "(--seeds 1 runs every point once, with the config's own seed)."
  ], proc.stderr
  assert not root.exists()


def _sweep_file(tmp_path, points) -> str:
  path = tmp_path / "bad_sweep.py"
  path.write_text(
    "from experiments import cnn_fashion_mnist\n\n"
    "def get_config(arg=None):\n"
    "  return cnn_fashion_mnist.get_config('tiny')\n\n"
    f"def get_sweep(arg=None):\n  return {points!r}\n"
  )
  return str(path)


def test_every_point_is_validated_before_the_first_run(tmp_path):
  spec = _sweep_file(tmp_path, [{"model.dropout": 0.1}, {"batch_size": -4}])
  root = tmp_path / "sweep"
  with pytest.raises(
    ConfigError, match=r"sweep point 1 \{'batch_size': -4\} seed 0: --config.batch_size=-4: must be"
  ):
    run_sweep(spec, str(root), seeds=2)
  assert not root.exists()


def test_a_point_that_fails_at_build_is_one_line_and_the_sweep_goes_on(data_env, tmp_path, capsys):
  # Five 2x2 poolings leave nothing of 28x28 images: a ConfigError once the data is read.
  spec = _sweep_file(tmp_path, [{"model.widths": (4,) * 5}])
  root = tmp_path / "sweep"
  with pytest.raises(UserError, match="some sweep points failed"):
    sweep_main(spec, str(root))
  out, err = capsys.readouterr()
  assert "[sweep] point 0: error: --config.model.widths=(4, 4, 4, 4, 4)" in out, out
  assert "Traceback" not in out + err
  with open(root / "summary.csv") as f:
    (row,) = list(csv.DictReader(f))
  assert row["status"].startswith("failed: --config.model.widths"), row
