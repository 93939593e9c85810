"""Sweeps: one workdir per point, a summary table, finished points skipped on restart."""

import csv
import os

from tests.conftest import run_script


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
