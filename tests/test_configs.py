"""Config files, overrides and their error messages."""

import pytest

from vision import configs

CNN = "experiments/cnn_fashion_mnist.py"


def test_load_variants_and_overrides():
  config = configs.load_config(
    CNN + ":tiny",
    ["optim.learning_rate=0.5", "model.widths=(4, 8)", "aug.flip=false", "model.dropout=0"],
  )
  assert config.optim.learning_rate == 0.5
  assert tuple(config.model.widths) == (4, 8)
  assert config.aug.flip is False
  assert config.model.dropout == 0.0 and isinstance(config.model.dropout, float)
  assert config.num_steps == 12  # the tiny variant


def test_config_is_locked():
  config = configs.load_config(CNN)
  with pytest.raises(AttributeError):
    config.new_field = 1


def test_unknown_field_names_field_and_suggests():
  with pytest.raises(configs.ConfigError) as e:
    configs.load_config(CNN, ["optim.learnig_rate=0.1"])
  message = str(e.value)
  assert "unknown config field 'optim.learnig_rate'" in message
  assert "optim.learning_rate" in message  # the suggestion


def test_unknown_group():
  with pytest.raises(configs.ConfigError, match="unknown config field 'modle.dropout'"):
    configs.load_config(CNN, ["modle.dropout=0.1"])


def test_bad_value_type():
  with pytest.raises(configs.ConfigError, match="expected a int"):
    configs.load_config(CNN, ["batch_size=big"])


def test_unknown_config_file_lists_available():
  with pytest.raises(configs.ConfigError) as e:
    configs.load_config("experiments/does_not_exist.py")
  assert "not found" in str(e.value) and "cnn_fashion_mnist.py" in str(e.value)


def test_unknown_variant():
  with pytest.raises(configs.ConfigError, match="unknown variant 'huge'"):
    configs.load_config(CNN + ":huge")


def test_sweep_points():
  points = configs.load_sweep(CNN)
  assert [p["model.dropout"] for p in points] == [0.0, 0.2, 0.5, 0.8]
