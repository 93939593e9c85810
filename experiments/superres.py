"""Super-resolution on Fashion-MNIST: x2 from 14x14 (``scale=2``) or x4 from 7x7 (``scale=4``).

Inputs are box-filtered (AveragePooling, as in the TF lesson) copies of the
28x28 images. The default model is an ESPCN-style net (convolutions at low
resolution, learned sub-pixel x2 upsampling) whose zero-initialized output is
added to the bicubic upsampling in logit space, so it starts at the bicubic
baseline and learns the missing detail; variant ``classic`` is the lesson's
autoencoder with the smaller encoder. Loss: MSE (PSNR is what is measured).
Command and expected result (2-core x86 CPU; 2 epochs took 10 min on a shared, heavily loaded
machine, a few minutes on an idle one):

  python scripts/train.py --config experiments/superres.py --workdir runs/superres_x2
  # -> results.json: test_psnr 24.0 dB vs baseline_psnr (clipped bicubic) 19.3 dB: +4.7 dB
  python scripts/train.py --config experiments/superres.py --workdir runs/superres_x4 \\
      --config.scale=4

Variants (``:ARG``): classic, small, tiny.
"""

import ml_collections

from vision.train import optim


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.task = "superres"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "fashion_mnist"
  config.data.data_dir = ""
  config.data.image_size = ()
  config.data.train_split = "train[:55000]"
  config.data.val_split = "train[55000:]"
  config.data.test_split = "test"

  config.scale = 2  # 2: 14x14 -> 28x28, 4: 7x7 -> 28x28

  config.model = ml_collections.ConfigDict()
  config.model.name = "superres_net"
  config.model.width = 32
  config.model.depth = 3
  config.model.dtype = "float32"

  config.loss = "mse"
  config.optim = optim.default_config(
    name="adam", learning_rate=2e-3, schedule="cosine", warmup_steps=100, final_lr_fraction=0.05
  )

  config.batch_size = 128
  config.num_epochs = 2
  config.num_steps = 0
  config.log_every = 50
  config.eval_every = 430
  config.checkpoint_every = 1000
  config.keep_checkpoints = 2
  config.progress = True

  if arg == "classic":
    config.model = ml_collections.ConfigDict(
      dict(
        name="conv_autoencoder",
        encoder_widths=(16, 8, 8),
        decoder_widths=(8, 8, 16),
        latent_dim=0,
        upsample="nearest",
        dtype="float32",
      )
    )
    config.loss = "bce"
  elif arg == "small":
    config.data.train_split = "train[:12000]"
    config.data.val_split = "train[55000:56000]"
    config.num_epochs = 2
    config.eval_every = 90
  elif arg == "tiny":
    config.data.train_split = "train[:256]"
    config.data.val_split = "train[256:384]"
    config.data.test_split = "test[:128]"
    config.model.width = 8
    config.model.depth = 2
    config.batch_size = 32
    config.num_epochs = 0
    config.num_steps = 6
    config.log_every = 2
    config.eval_every = 3
    config.checkpoint_every = 6
    config.optim.warmup_steps = 0
    config.progress = False
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use 'classic', 'small' or 'tiny' (or nothing).")
  return config
