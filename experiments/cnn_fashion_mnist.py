"""A small CNN trained from scratch on Fashion-MNIST (offline, Debian's IDX files).

The baseline that transfer learning is compared against, and the proof of the
training stack. Command and expected result (2-core x86 CPU):

  python scripts/train.py --config experiments/cnn_fashion_mnist.py --workdir runs/cnn
  # -> results.json: test_accuracy 0.9205 (>= 0.91) on the 10,000 test images; ~11 CPU-min

Variants (``:ARG``):
  small   a 1-minute smoke run (2 epochs on 6,000 images, narrow net)
  tiny    a few steps, for tests

Dropout ablation (the classic lesson's sweep, dropout 0 / 0.2 / 0.5 / 0.8):

  python scripts/sweep.py --config experiments/cnn_fashion_mnist.py --workdir runs/cnn_dropout
"""

import ml_collections

from vision.train import optim


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.task = "classification"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "fashion_mnist"
  config.data.data_dir = ""  # '' -> $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.root = ""  # for data.name='image_folder'
  config.data.image_size = ()  # host-side resize (H, W); () keeps the stored size
  config.data.on_bad_image = "skip"
  config.data.train_split = "train[:55000]"
  config.data.val_split = "train[55000:]"
  config.data.test_split = "test"
  config.data.per_class = 0  # >0: few-shot subset of N training images per class

  config.aug = ml_collections.ConfigDict()
  config.aug.size = 0  # 0: keep the stored resolution
  config.aug.crop_padding = 0  # see the README: crops + no smoothing gave 90.8% test
  config.aug.flip = True
  config.aug.random_resized_crop = False
  config.aug.min_area = 0.35

  config.model = ml_collections.ConfigDict()
  config.model.name = "cnn"
  config.model.widths = (32, 64)
  config.model.convs_per_block = 1
  config.model.hidden = 256
  config.model.dropout = 0.3
  config.model.batch_norm = True
  config.model.initializer = "he_normal"  # he_normal, glorot_uniform, lecun_normal, normal
  config.model.dtype = "float32"  # 'bfloat16' for accelerators; params stay float32

  config.optim = optim.default_config(
    name="adamw", learning_rate=2e-3, schedule="cosine", warmup_steps=200, weight_decay=1e-4
  )

  config.batch_size = 128
  config.num_epochs = 10
  config.num_steps = 0  # >0 overrides num_epochs
  config.label_smoothing = 0.1
  config.early_stopping_patience = 0  # evaluations without improvement before stopping
  config.log_every = 50
  config.eval_every = 430  # ~one epoch
  config.checkpoint_every = 1000
  config.keep_checkpoints = 2
  config.progress = True

  if arg == "small":
    config.data.train_split = "train[:6000]"
    config.data.val_split = "train[55000:56000]"
    config.model.widths = (16, 32)
    config.model.convs_per_block = 1
    config.model.hidden = 64
    config.num_epochs = 2
    config.eval_every = 50
    config.optim.warmup_steps = 20
  elif arg == "tiny":
    config.data.train_split = "train[:512]"
    config.data.val_split = "train[512:768]"
    config.data.test_split = "test[:256]"
    config.model.widths = (8, 16)
    config.model.convs_per_block = 1
    config.model.hidden = 32
    config.batch_size = 64
    config.num_epochs = 0
    config.num_steps = 12
    config.log_every = 2
    config.eval_every = 6
    config.checkpoint_every = 4
    config.optim.warmup_steps = 2
    config.progress = False
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use 'small' or 'tiny' (or nothing).")
  return config


def get_sweep(arg=None):
  del arg
  return [{"model.dropout": d} for d in (0.0, 0.2, 0.5, 0.8)]
