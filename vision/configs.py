"""Experiment configs: load ``experiments/NAME.py[:ARG]`` and apply ``--config.FIELD=VALUE``.

Each experiment file defines ``get_config(arg=None) -> ml_collections.ConfigDict``
and optionally ``get_sweep(arg=None) -> list[dict]`` of overrides. Configs are
locked after loading, so a typo in an override is an error instead of a
silently ignored field. Every error names the problem and the fix.

A config file is executed by path. When its folder is a package (``experiments/`` is), the
folder above goes on ``sys.path`` (at the end, shadowing nothing), so the file can import its
siblings (``from experiments import common``) whatever the working directory.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections

from vision.errors import ConfigError  # noqa: F401


def _is_config_file(path: str) -> bool:
  try:
    with open(path, encoding="utf-8") as f:
      return "def get_config(" in f.read()
  except OSError:
    return False


def _experiments_hint(path: str) -> str:
  folder = os.path.dirname(path) or "experiments"
  if not os.path.isdir(folder):
    folder = "experiments"
  try:
    names = sorted(
      f
      for f in os.listdir(folder)
      if f.endswith(".py") and not f.startswith("_") and _is_config_file(os.path.join(folder, f))
    )
  except OSError:
    return ""
  return f" Available configs in {folder}/: {', '.join(names)}." if names else ""


def split_spec(spec: str) -> tuple[str, str | None]:
  """``'experiments/x.py:small'`` -> ``('experiments/x.py', 'small')``."""
  path, sep, arg = spec.partition(":")
  return path, (arg if sep else None)


def _importable_package_folder(path: str) -> None:
  """Puts the folder above ``path``'s package (if its folder is one) on ``sys.path``."""
  folder = os.path.dirname(os.path.abspath(path))
  if os.path.isfile(os.path.join(folder, "__init__.py")):
    parent = os.path.dirname(folder)
    if parent not in sys.path:
      sys.path.append(parent)


def load_module(path: str):
  if not os.path.isfile(path):
    what = "is a folder, not a config file" if os.path.isdir(path) else "not found"
    raise ConfigError(
      f"config file {path!r} {what}; give --config experiments/NAME.py[:ARG]."
      f"{_experiments_hint(path)}"
    )
  if not path.endswith(".py"):
    raise ConfigError(
      f"config file {path!r} is not a Python file; give --config experiments/NAME.py[:ARG]."
      f"{_experiments_hint(path)}"
    )
  _importable_package_folder(path)
  name = "vision_experiment_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {path!r} defines no get_config(arg=None) function.")
  return module


def _call_with_arg(fn, arg):
  if arg is None:
    return fn()
  if not inspect.signature(fn).parameters:
    raise ConfigError(
      f"{fn.__name__}() of this config takes no argument, but ':{arg}' was given; drop ':{arg}'."
    )
  return fn(arg)


def load_config(
  spec: str, overrides: Mapping[str, Any] | Iterable[str] = ()
) -> ml_collections.ConfigDict:
  """Loads ``path.py[:arg]``, locks it and applies overrides.

  Overrides are either a mapping ``{'optim.learning_rate': 0.1}`` or strings
  ``'optim.learning_rate=0.1'`` as they come from the command line.
  """
  path, arg = split_spec(spec)
  module = load_module(path)
  config = _call_config_function(path, module.get_config, arg)
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{path}: get_config must return an ml_collections.ConfigDict.")
  config.lock()
  apply_overrides(config, overrides)
  return config


def _call_config_function(path: str, fn, arg):
  """``fn(arg)`` (``get_config`` or ``get_sweep``); its KeyError or ValueError becomes a
  ConfigError naming the file."""
  try:
    return _call_with_arg(fn, arg)
  except ConfigError:
    raise
  except (KeyError, ValueError) as e:
    raise ConfigError(f"{path}: {fn.__name__}({arg!r}) failed: {e}") from e


def load_sweep(spec: str) -> list[dict[str, Any]]:
  path, arg = split_spec(spec)
  module = load_module(path)
  if not hasattr(module, "get_sweep"):
    raise ConfigError(
      f"config file {path!r} defines no get_sweep(); add get_sweep(arg=None) returning "
      "a list of override dicts, e.g. [{'model.dropout': 0.0}, {'model.dropout': 0.5}]."
    )
  sweep = _call_config_function(path, module.get_sweep, arg)
  if not sweep:
    raise ConfigError(f"{path}: get_sweep({arg!r}) returned no points.")
  return [dict(point) for point in sweep]


def _fields(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  out = []
  for key, value in config.items():
    name = prefix + key
    out.append(name)
    if isinstance(value, ml_collections.ConfigDict):
      out.extend(_fields(value, name + "."))
  return out


def parse_value(text: str, current: Any, field: str) -> Any:
  """Parses a command-line string into the type of the field's current value."""
  if not isinstance(text, str):
    return text
  try:
    if isinstance(current, bool):
      lowered = text.lower()
      if lowered in ("true", "1", "yes"):
        return True
      if lowered in ("false", "0", "no"):
        return False
      raise ValueError
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    if isinstance(current, str):
      return text
    if isinstance(current, (tuple, list)):
      value = ast.literal_eval(text)
      if isinstance(value, (int, float, str)):
        value = (value,)
      return type(current)(value)
  except (ValueError, SyntaxError) as e:
    raise ConfigError(
      f"cannot parse --config.{field}={text!r}: expected a {type(current).__name__} like the "
      f"current value {current!r} (e.g. --config.{field}={current!r})."
    ) from e
  # A field that is None (or another type) takes any Python literal, else the string.
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _unknown_field(key, known, node, where) -> ConfigError:
  close = difflib.get_close_matches(key, known, n=3)
  hint = f" Did you mean {' or '.join(close)}?" if close else ""
  siblings = ", ".join(sorted(node.keys()))
  return ConfigError(
    f"unknown config field {key!r}.{hint} Fields of {where or 'the config'}: {siblings}."
  )


def apply_overrides(
  config: ml_collections.ConfigDict, overrides: Mapping[str, Any] | Iterable[str]
) -> None:
  if isinstance(overrides, Mapping):
    items = list(overrides.items())
  else:
    items = []
    for item in overrides:
      if "=" not in item:
        raise ConfigError(f"override {item!r} must look like FIELD=VALUE.")
      key, value = item.split("=", 1)
      items.append((key, value))
  known = _fields(config)
  for key, text in items:
    key = key.removeprefix("config.")
    *parents, leaf = key.split(".")
    node = config
    for i, part in enumerate(parents):
      if part not in node:
        raise _unknown_field(key, known, node, ".".join(parents[:i]))
      node = node[part]
      if not isinstance(node, ml_collections.ConfigDict):
        raise ConfigError(f"{'.'.join(parents[: i + 1])!r} is a value, not a group of fields.")
    if leaf not in node:
      raise _unknown_field(key, known, node, ".".join(parents))
    value = parse_value(text, node[leaf], key)
    try:
      with node.ignore_type():
        node[leaf] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(f"cannot set {key!r} to {value!r}: {e}") from e


def to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """A JSON-friendly plain dict of the resolved config."""
  return config.to_dict()


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in d.items():
    if isinstance(value, Mapping):
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = list(value) if isinstance(value, tuple) else value
  return out
