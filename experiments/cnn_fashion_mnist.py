"""A small CNN trained from scratch on Fashion-MNIST (offline, Debian's IDX files).

The baseline that transfer learning is compared against, and the proof of the
training stack. Command and expected result (2-core x86 CPU; run time: docs/performance.md):

  python scripts/train.py --config experiments/cnn_fashion_mnist.py --workdir runs/cnn
  # -> results.json: test_accuracy 0.9205 (>= 0.91) on the 10,000 test images

Variants (``:ARG``):
  small   a smoke run (2 epochs on 6,000 images, narrow net)
  tiny    a few steps, for tests

Dropout ablation (dropout 0 / 0.2 / 0.5 / 0.8):

  python scripts/sweep.py --config experiments/cnn_fashion_mnist.py --workdir runs/cnn_dropout
"""

import ml_collections

from experiments import common

VARIANTS = common.SIZES


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  size = common.pick(words, common.SIZES)
  config = common.base("classification")
  config.data = common.data(folders=True)

  config.aug = ml_collections.ConfigDict()
  config.aug.size = 0  # 0: keep the stored resolution
  config.aug.crop_padding = 0  # see the README: crops + no smoothing gave 90.8% test
  config.aug.flip = True
  config.aug.random_resized_crop = False
  config.aug.min_area = 0.35

  config.model = common.cnn(widths=(32, 64))
  config.optim = common.optim(
    name="adamw", learning_rate=2e-3, schedule="cosine", warmup_steps=200, weight_decay=1e-4
  )
  common.loop(config, num_epochs=10)
  config.label_smoothing = 0.1
  config.early_stopping_patience = 0  # evaluations without improvement before stopping

  if size == "small":
    common.small(config, train=6000, eval_every=50)
    config.model.widths = (16, 32)
    config.model.hidden = 64
    config.optim.warmup_steps = 20
  elif size == "tiny":
    common.tiny(
      config,
      train=512,
      val=256,
      test=256,
      batch_size=64,
      num_steps=12,
      checkpoint_every=4,
      warmup_steps=2,
    )
    config.model.widths = (8, 16)
    config.model.hidden = 32
  return config


def get_sweep(arg=None):
  del arg
  return [{"model.dropout": d} for d in (0.0, 0.2, 0.5, 0.8)]
