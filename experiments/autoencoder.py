"""The lesson's convolutional autoencoder on Fashion-MNIST (offline, Debian's IDX files).

Encoder Conv16-Pool, Conv8-Pool, Conv8-Pool (a 4x4x8 = 128-value code), mirrored
decoder with nearest-neighbour upsampling, logits + binary cross-entropy on the
grey levels, Adam 1e-3. Command and what to look for (2-core x86 CPU, 5 epochs; the full run
has not been timed yet, only the ``tiny`` variant is tested):

  python scripts/train.py --config experiments/autoencoder.py --workdir runs/autoencoder
  # -> results.json: test_loss (per-pixel BCE on grey levels) and test_psnr on the 10,000 test
  #    images. Not comparable with the lesson's MNIST BCE of 0.095: MNIST is mostly black, so
  #    its BCE floor is much lower. reconstructions.png, random_codes.png

Variants (``:ARG``):
  latent2 the lesson's Task 1: a dense 2-D bottleneck after the conv part; latent_scatter.png
  small   a 1-minute smoke run
  tiny    a few steps, for tests
"""

import ml_collections

from vision.train import optim


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.task = "autoencoder"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "fashion_mnist"  # or 'mnist' (TFDS, once prepared), 'digits'
  config.data.data_dir = ""
  config.data.image_size = ()
  config.data.train_split = "train[:55000]"
  config.data.val_split = "train[55000:]"
  config.data.test_split = "test"

  config.model = ml_collections.ConfigDict()
  config.model.name = "conv_autoencoder"
  config.model.encoder_widths = (16, 8, 8)
  config.model.decoder_widths = (8, 8, 16)
  config.model.latent_dim = 0  # >0: dense bottleneck of this size
  config.model.upsample = "nearest"  # 'nearest' (UpSampling2D) or 'learned' (transposed conv)
  config.model.dtype = "float32"

  config.loss = "bce"  # 'bce' on logits (the lesson's) or 'mse' of the sigmoid
  config.optim = optim.default_config(
    name="adam", learning_rate=1e-3, schedule="cosine", warmup_steps=100, final_lr_fraction=0.1
  )

  config.batch_size = 128
  config.num_epochs = 5
  config.num_steps = 0
  config.log_every = 50
  config.eval_every = 430
  config.checkpoint_every = 1000
  config.keep_checkpoints = 2
  config.progress = True

  if arg == "latent2":
    config.model.latent_dim = 2
  elif arg == "small":
    config.data.train_split = "train[:12000]"
    config.data.val_split = "train[55000:56000]"
    config.num_epochs = 2
    config.eval_every = 90
  elif arg == "tiny":
    config.data.train_split = "train[:256]"
    config.data.val_split = "train[256:384]"
    config.data.test_split = "test[:128]"
    config.model.latent_dim = 2
    config.batch_size = 32
    config.num_epochs = 0
    config.num_steps = 6
    config.log_every = 2
    config.eval_every = 3
    config.checkpoint_every = 6
    config.optim.warmup_steps = 0
    config.progress = False
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use 'latent2', 'small' or 'tiny' (or nothing).")
  return config
