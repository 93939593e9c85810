"""Config blocks shared by the experiment files, and the one grammar of their argument.

An experiment file builds its ``ml_collections.ConfigDict`` from these blocks and then sets what
is its own, so a field has one name, one meaning and one default across experiments:

* :func:`base`: the top-level fields of every config (training runs and the attack, visualize
  and stylize drivers alike): ``task``, ``seed``, ``kernels``, ``progress``.
* :func:`data`, :func:`optim`, :func:`loop`: the dataset, the optimizer, the training loop.
* :func:`cnn`, :func:`conv_autoencoder`: model groups that more than one experiment uses.
* :func:`small`, :func:`tiny`: what the ``small`` (a short smoke run) and ``tiny`` (a few steps
  on a few hundred images, for tests) variants of the training configs share.
* :func:`parse_words`, :func:`pick`: the argument after ``:`` in ``--config
  experiments/X.py:ARG`` is a list of comma-separated words in any order, e.g.
  ``experiments/gan.py:cdcgan,tiny``; words of one group (two models, two sizes) exclude each
  other.

Config files import this module as ``from experiments import common``. They are executed by
path (``vision.configs.load_module``), not imported, so an import cannot count on the working
directory: ``experiments/`` is a package, and ``load_module`` puts the folder above a config's
package on ``sys.path`` before it runs the file. Under pytest and ``python -c`` in the repository
root the import works without that step. Nothing here imports ``vision``: a config is plain
data, and loading one imports no library code.
"""

from __future__ import annotations

from collections.abc import Iterable

import ml_collections

SIZES = ("small", "tiny")


def parse_words(arg: str | None, allowed: Iterable[str]) -> set[str]:
  """The words of ``'word,word'`` (``None`` or ``''``: none); unknown words are a ValueError."""
  allowed = tuple(allowed)
  words = {word.strip() for word in (arg or "").split(",") if word.strip()}
  unknown = sorted(words - set(allowed))
  if unknown:
    what = "variant" if len(unknown) == 1 else "variants"
    raise ValueError(
      f"unknown {what} {', '.join(map(repr, unknown))}; use comma-separated words from: "
      f"{', '.join(allowed)} (or nothing)."
    )
  return words


def pick(words: set[str], options: Iterable[str], default: str | None = None) -> str | None:
  """The one word of ``options`` among ``words``, ``default`` when there is none."""
  chosen = [option for option in options if option in words]
  if len(chosen) > 1:
    raise ValueError(f"variants {' and '.join(map(repr, chosen))} exclude each other; give one.")
  return chosen[0] if chosen else default


def base(task: str | None = None) -> ml_collections.ConfigDict:
  """A config with the fields every experiment has; ``task`` names what runs it."""
  config = ml_collections.ConfigDict()
  if task is not None:
    config.task = task
  config.seed = 0
  # Which form of the backend-specific ops runs: 'auto' (the fast form for the backend),
  # 'portable' (plain XLA everywhere) or 'cpu'; $VISION_KERNELS overrides it.
  config.kernels = "auto"
  config.progress = True
  return config


def data(
  name: str = "fashion_mnist", *, folders: bool = False, **fields
) -> ml_collections.ConfigDict:
  """The ``data`` group: Fashion-MNIST's splits, the last 5,000 training images for validation.

  ``folders=True`` adds the fields of image-folder datasets and few-shot subsets (``root``,
  ``on_bad_image``, ``per_class``); ``fields`` set or add others.
  """
  group = ml_collections.ConfigDict()
  group.name = name
  group.data_dir = ""  # '' -> $TFDS_DATA_DIR or ~/tensorflow_datasets
  if folders:
    group.root = ""  # for name='image_folder'
  group.image_size = ()  # host-side resize (H, W); () keeps the stored size
  if folders:
    group.on_bad_image = "skip"
    group.per_class = 0  # >0: few-shot subset of N training images per class
  group.train_split = "train[:55000]"
  group.val_split = "train[55000:]"
  group.test_split = "test"
  group.update(fields)
  return group


def optim(**overrides) -> ml_collections.ConfigDict:
  """An ``optim`` group with every field vision/train/optim.py reads; ``overrides`` set some."""
  group = ml_collections.ConfigDict(
    dict(
      name="adamw",  # sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad
      learning_rate=1e-3,
      schedule="cosine",  # constant, cosine, step, exponential
      warmup_steps=0,
      final_lr_fraction=0.0,  # cosine: final lr as a fraction of the peak
      step_boundaries=(0.5, 0.75),  # step: fractions of training where lr *= decay_rate
      decay_rate=0.1,  # step / exponential decay factor
      transition_steps=1000,  # exponential: steps per decay_rate factor
      weight_decay=0.0,
      grad_clip_norm=0.0,  # 0: no clipping
      momentum=0.9,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      rms_decay=0.9,
    )
  )
  group.update(overrides)
  return group


def loop(
  config: ml_collections.ConfigDict,
  *,
  num_epochs: int,
  num_steps: int = 0,
  batch_size: int = 128,
  eval_every: int = 430,
  checkpoint_every: int = 1000,
) -> None:
  """Sets the training loop's fields of ``config``; ``num_steps > 0`` overrides ``num_epochs``.

  ``eval_every`` 430 steps of 128 is about one epoch of 55,000 images; 0: only at the end.
  """
  config.batch_size = batch_size
  config.num_epochs = num_epochs
  config.num_steps = num_steps
  config.log_every = 50
  config.eval_every = eval_every
  config.checkpoint_every = checkpoint_every
  config.keep_checkpoints = 2


def cnn(widths=(32, 64)) -> ml_collections.ConfigDict:
  """The project's CNN (vision/models): conv blocks of ``widths``, BN, dropout, a dense layer."""
  return ml_collections.ConfigDict(
    dict(
      name="cnn",
      widths=widths,
      convs_per_block=1,
      hidden=256,
      dropout=0.3,
      batch_norm=True,
      initializer="he_normal",  # he_normal, glorot_uniform, lecun_normal, normal
      dtype="float32",  # 'bfloat16' for accelerators; params stay float32
    )
  )


def conv_autoencoder(
  encoder_widths=(16, 8, 8), decoder_widths=(8, 8, 16)
) -> ml_collections.ConfigDict:
  """Conv-pool encoder, mirrored decoder; the default widths give a 4x4x8 = 128-value code."""
  return ml_collections.ConfigDict(
    dict(
      name="conv_autoencoder",
      encoder_widths=encoder_widths,
      decoder_widths=decoder_widths,
      latent_dim=0,  # >0: a dense bottleneck of this size after the conv part
      upsample="nearest",  # 'nearest' (UpSampling2D) or 'learned' (transposed conv)
      dtype="float32",
    )
  )


def small(
  config: ml_collections.ConfigDict,
  *,
  train: int = 12000,
  val: int = 1000,
  test: int = 0,
  num_epochs: int = 2,
  eval_every: int = 90,
) -> None:
  """The ``small`` variant: ``train`` training images, ``val`` from 55,000 on (0 ``test``: all)."""
  config.data.train_split = f"train[:{train}]"
  config.data.val_split = f"train[55000:{55000 + val}]"
  if test:
    config.data.test_split = f"test[:{test}]"
  config.num_epochs = num_epochs
  config.eval_every = eval_every


def tiny(
  config: ml_collections.ConfigDict,
  *,
  train: int = 256,
  val: int = 128,
  test: int = 128,
  batch_size: int = 32,
  num_steps: int = 6,
  eval_every: int | None = None,
  checkpoint_every: int | None = None,
  warmup_steps: int = 0,
) -> None:
  """The ``tiny`` variant: ``num_steps`` steps on the first ``train`` training images.

  Validation on the next ``val`` images (when the config has a validation split) and evaluation
  half-way (``eval_every``) and at the end; a checkpoint at the end; no progress bar.
  """
  config.data.train_split = f"train[:{train}]"
  if "val_split" in config.data:
    config.data.val_split = f"train[{train}:{train + val}]"
  config.data.test_split = f"test[:{test}]"
  config.batch_size = batch_size
  config.num_epochs = 0
  config.num_steps = num_steps
  config.log_every = 2
  config.eval_every = num_steps // 2 if eval_every is None else eval_every
  config.checkpoint_every = num_steps if checkpoint_every is None else checkpoint_every
  if "optim" in config:
    config.optim.warmup_steps = warmup_steps
  config.progress = False
