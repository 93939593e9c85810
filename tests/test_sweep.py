"""Sweeps: one workdir per point, a summary table, finished points skipped on restart."""

import csv
import os

import pytest

from tests.conftest import run_script
from vision.drivers.sweep import point_keys, write_summary


@pytest.mark.slow
def test_two_point_sweep_writes_summary_and_skips_finished(data_env, tmp_path):
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
  proc = run_script("sweep.py", *args, env=data_env, check=True)
  assert sorted(os.listdir(root)) == ["dropout=0.0", "dropout=0.5", "summary.csv", "summary.md"]
  rows = list(csv.DictReader(open(root / "summary.csv")))
  assert [float(r["model.dropout"]) for r in rows] == [0.0, 0.5]
  for row in rows:
    assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and row["status"] == "done"
  table = (root / "summary.md").read_text()
  assert table.startswith("| model.dropout | test_accuracy |") and table.count("\n") == 4
  assert "| model.dropout |" in proc.stdout

  # Started again (e.g. after an interruption), finished points are not re-run.
  mtime = os.path.getmtime(root / "dropout=0.0" / "results.json")
  proc = run_script("sweep.py", *args, env=data_env, check=True)
  assert "already finished, skipping" in proc.stdout
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
