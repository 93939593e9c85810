"""The command-line plumbing: user errors become one line and exit status 2, bugs stay loud.

The table of bad inputs through the real scripts is tests/test_bad_inputs.py.
"""

import pytest

from vision import cli
from vision.errors import ConfigError, InputError


def test_guarded_prints_a_user_error_as_one_line_and_returns_2(capsys):
  def main(argv):
    raise ConfigError("--config.batch_size=-5: must be a positive integer; use e.g. 64.")

  assert cli.guarded(main, []) == 2
  err = capsys.readouterr().err
  assert err == "error: --config.batch_size=-5: must be a positive integer; use e.g. 64.\n"


def test_guarded_lets_a_bug_raise():
  def main(argv):
    raise KeyError("a bug, not a user error")

  with pytest.raises(KeyError):
    cli.guarded(main, [])


def test_parse_args_checks_the_config_and_the_workdir(tmp_path):
  spec = "experiments/cnn_fashion_mnist.py:tiny"
  args = cli.parse_args(["--config", spec, "--workdir", str(tmp_path / "run")])
  assert args.config.batch_size == 64 and not (tmp_path / "run").exists()
  with pytest.raises(ConfigError, match="batch_size=-5"):
    cli.parse_args(["--config", spec, "--workdir", str(tmp_path), "--config.batch_size=-5"])
  (tmp_path / "file").write_text("x")
  with pytest.raises(InputError, match="is an existing file"):
    cli.parse_args(["--config", spec, "--workdir", str(tmp_path / "file")])
