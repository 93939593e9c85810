"""Config files, overrides and their error messages; every experiment file and its variants."""

import ast
import glob
import os
import re
import subprocess
import sys

import pytest

from experiments import common
from tests.conftest import ROOT
from vision import configs
from vision.ops import kernels

CNN = "experiments/cnn_fashion_mnist.py"
CONFIG_FILES = sorted(
  path
  for path in glob.glob(os.path.join(ROOT, "experiments", "*.py"))
  if not os.path.basename(path).startswith("_") and os.path.basename(path) != "common.py"
)
NAMES = [os.path.relpath(path, ROOT) for path in CONFIG_FILES]


def variant_specs(path):
  """No argument, every word, every word with ``tiny``, and every spec that the file, the
  README or docs/ name."""
  name = os.path.relpath(path, ROOT)
  words = configs.load_module(path).VARIANTS
  specs = [name, *(f"{name}:{word}" for word in words)]
  if "tiny" in words:
    specs += [f"{name}:{word},tiny" for word in words if word not in common.SIZES]
  for text_file in [path, os.path.join(ROOT, "README.md"), *glob.glob(f"{ROOT}/docs/*.md")]:
    with open(text_file) as f:
      specs += re.findall(rf"{re.escape(name)}:[\w,]+", f.read())
  return list(dict.fromkeys(specs))


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
  assert "common.py" not in str(e.value)  # not a config


def test_unknown_variant():
  with pytest.raises(configs.ConfigError, match="unknown variant 'huge'"):
    configs.load_config(CNN + ":huge")


def test_sweep_points():
  points = configs.load_sweep(CNN)
  assert [p["model.dropout"] for p in points] == [0.0, 0.2, 0.5, 0.8]


def test_every_config_and_variant_loads_with_a_kernels_field():
  assert len(CONFIG_FILES) == 11, NAMES
  loaded = 0
  for path in CONFIG_FILES:
    for spec in variant_specs(path):
      config = configs.load_config(spec.replace(os.path.relpath(path, ROOT), path))
      assert config.kernels == "auto" and config.kernels in kernels.KERNELS, spec
      assert config.seed == 0 and isinstance(config.progress, bool), spec
      if ":" in spec and "tiny" in spec.split(":")[1].split(","):
        assert config.progress is False, spec
      loaded += 1
  assert loaded > 100


@pytest.mark.parametrize("name", NAMES)
def test_unknown_word_names_the_allowed_ones(name):
  with pytest.raises(configs.ConfigError) as e:
    configs.load_config(f"{name}:tiny,huge")
  message = str(e.value)
  assert "unknown variant 'huge'" in message
  assert all(word in message for word in configs.load_module(name).VARIANTS)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=NAMES)
def test_configs_import_nothing_from_vision_train(path):
  with open(path) as f:
    tree = ast.parse(f.read())
  imported = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      imported += [f"{node.module}.{alias.name}" for alias in node.names]
  assert imported  # the walk sees the imports
  assert not [m for m in imported if m == "vision.train" or m.startswith("vision.train.")]


def test_configs_load_from_any_directory_without_the_library(tmp_path):
  # A fresh interpreter in another directory, without the repository on PYTHONPATH: the
  # configs still find experiments/common.py, and loading them imports no training code.
  code = (
    "import sys\n"
    "from vision import configs\n"
    f"for path in {CONFIG_FILES!r}:\n"
    "  assert configs.load_config(path + ':tiny').kernels == 'auto'\n"
    "print(sorted(m for m in sys.modules if m.startswith(('vision.train', 'vision.models'))))\n"
  )
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  proc = subprocess.run(
    [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "[]"


def test_one_argument_grammar():
  allowed = ("dense", "cdcgan", "small", "tiny")
  assert common.parse_words(None, allowed) == set() == common.parse_words("", allowed)
  assert common.parse_words("tiny, cdcgan", allowed) == {"cdcgan", "tiny"}
  with pytest.raises(ValueError, match="unknown variants 'a', 'b'; .*dense, cdcgan, small, tiny"):
    common.parse_words("a,tiny,b", allowed)
  assert common.pick({"tiny", "dense"}, ("dense", "cdcgan"), "dcgan") == "dense"
  assert common.pick({"tiny"}, ("dense", "cdcgan"), "dcgan") == "dcgan"
  with pytest.raises(ValueError, match="'small' and 'tiny' exclude each other"):
    common.pick({"small", "tiny"}, common.SIZES)
  # Words combine in any order.
  a = configs.load_config("experiments/gan.py:cdcgan,tiny")
  b = configs.load_config("experiments/gan.py:tiny,cdcgan")
  assert a.to_dict() == b.to_dict() and a.model.name == "cdcgan_tiny"
  with pytest.raises(configs.ConfigError, match="exclude each other"):
    configs.load_config("experiments/transfer.py:vgg16,resnet18")


def test_the_shared_blocks_give_the_same_fields_everywhere():
  cnn = configs.load_config(CNN)
  transfer = configs.load_config("experiments/transfer.py:scratch")
  assert set(cnn.model) == set(transfer.scratch_model)
  assert set(cnn.data) == set(transfer.data)
  for name in NAMES:
    config = configs.load_config(name)
    for group in ("optim", "g_optim", "d_optim"):
      if group in config:
        assert set(config[group]) == set(common.optim()), (name, group)
