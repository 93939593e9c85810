"""Denoising autoencoder on Fashion-MNIST: noisy input, clean target.

A fresh model (the TF lesson fine-tuned the plain autoencoder instead), new
noise every step (the PyTorch lesson reused one fixed noise tensor), zero-mean
noise (the lessons added N(0.5, .) noise, i.e. also brightened the image).
``noise.kind``: 'gaussian' (std ``noise.level``, clipped to [0, 1]) or
'salt_pepper' (a fraction ``noise.level`` of pixels set to 0 or 1). The model
is the lesson's conv autoencoder, widened (32-32-32) so it has room to denoise.
Command and expected result (2-core x86 CPU; 4 epochs took 17 min on a shared, heavily loaded
machine, a few minutes on an idle one):

  python scripts/train.py --config experiments/denoise.py --workdir runs/denoise
  # -> results.json: test_psnr 17.5 dB vs baseline_psnr (the noisy input) 9.3 dB: +8.3 dB
  #    reconstructions.png: noisy / denoised / clean
  python scripts/train.py --config experiments/denoise.py --workdir runs/denoise_sp \\
      --config.noise.kind=salt_pepper --config.noise.level=0.3

Variants (``:ARG``): classic (the lesson's 16-8-8 widths), small, tiny.
"""

import ml_collections

from vision.train import optim


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.task = "denoise"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "fashion_mnist"
  config.data.data_dir = ""
  config.data.image_size = ()
  config.data.train_split = "train[:55000]"
  config.data.val_split = "train[55000:]"
  config.data.test_split = "test"

  config.noise = ml_collections.ConfigDict()
  config.noise.kind = "gaussian"  # 'gaussian' or 'salt_pepper'
  config.noise.level = 0.5  # gaussian std, or salt-and-pepper fraction

  config.model = ml_collections.ConfigDict()
  config.model.name = "conv_autoencoder"
  config.model.encoder_widths = (32, 32, 32)
  config.model.decoder_widths = (32, 32, 32)
  config.model.latent_dim = 0
  config.model.upsample = "nearest"
  config.model.dtype = "float32"

  config.loss = "bce"
  config.optim = optim.default_config(
    name="adam", learning_rate=2e-3, schedule="cosine", warmup_steps=100, final_lr_fraction=0.05
  )

  config.batch_size = 128
  config.num_epochs = 4
  config.num_steps = 0
  config.log_every = 50
  config.eval_every = 430
  config.checkpoint_every = 1000
  config.keep_checkpoints = 2
  config.progress = True

  if arg == "classic":
    config.model.encoder_widths = (16, 8, 8)
    config.model.decoder_widths = (8, 8, 16)
  elif arg == "small":
    config.data.train_split = "train[:12000]"
    config.data.val_split = "train[55000:56000]"
    config.num_epochs = 2
    config.eval_every = 90
  elif arg == "tiny":
    config.data.train_split = "train[:256]"
    config.data.val_split = "train[256:384]"
    config.data.test_split = "test[:128]"
    config.model.encoder_widths = (8, 8, 8)
    config.model.decoder_widths = (8, 8, 8)
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
