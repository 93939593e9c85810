"""Every script reports a user error as one ``error:`` line and exit status 2, never a traceback."""

import pytest

from tests.conftest import run_script

WORKDIR = "{workdir}"  # replaced by a fresh folder per case

CASES = [
  # missing weights file (WeightsError)
  (
    "attack.py",
    ["--config", "experiments/attack.py", "--workdir", WORKDIR, "--config.weights=/no/such.npz"],
    "/no/such.npz",
  ),
  # missing config file (ConfigError)
  ("visualize.py", ["--config", "experiments/nope.py", "--workdir", WORKDIR], "not found"),
  # missing photo file (InputError)
  (
    "stylize.py",
    ["--config", "experiments/stylize.py", "--workdir", WORKDIR, "--config.style=/no/such.png"],
    "no image '/no/such.png'",
  ),
  # unknown workload (InputError)
  ("benchmark.py", ["dcgann"], "unknown workload"),
  # missing image file (InputError), found before the model loads
  ("classify.py", ["/no/such.png"], "no image '/no/such.png'"),
  # a bad command line (argparse, as an InputError)
  ("features.py", ["chelsea.png"], "--layer"),
  # missing checkpoint to convert (WeightsError)
  ("convert_weights.py", ["efficientnet_lite0", "/no/such.pth"], "/no/such.pth"),
  # a config without a sweep (ConfigError)
  ("sweep.py", ["--config", "experiments/attack.py", "--workdir", WORKDIR], "get_sweep"),
]


@pytest.mark.slow
@pytest.mark.parametrize("script,args,message", CASES, ids=[f"{c[0]}-{c[2][:20]}" for c in CASES])
def test_user_errors_are_one_line_and_exit_code_2(tmp_path, script, args, message):
  args = [str(tmp_path / "run") if a == WORKDIR else a for a in args]
  proc = run_script(script, *args, timeout=300)
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, proc.stderr
  assert message in errors[0], proc.stderr
