"""Adversarial autoencoder on Fashion-MNIST, with a latent discriminator that is really trained.

Dense encoder 784-512-512-latent, mirrored decoder (logits, BCE on grey
levels), discriminator latent-256-256-1 against an N(0, I) prior. One jitted
step: reconstruction update (Adam ``optim.learning_rate``), discriminator
update (``aae.disc_learning_rate``), encoder-as-generator update
(``aae.gen_learning_rate``), three optax states. The lesson's notebook stepped
the decoder's optimizer instead of the discriminator's (its D stayed at chance,
disc loss 1.39 = 2 ln 2) and its D ended in 500 outputs instead of one logit.
Command and expected result (2-core x86 CPU, 5 epochs, ~2 min):

  python scripts/train.py --config experiments/aae.py --workdir runs/aae
  # -> results.json: test_recon_bce 0.301 (per pixel), test_psnr 17.8 dB, test_d_accuracy 0.68
  #    (D is trained: train d_loss 0.8-1.2 < 2 ln 2), codes per dimension with mean abs 0.19 and
  #    std 1.3 (test_code_mean_abs, test_code_std); latent_scatter.png (first two code
  #    dimensions over prior samples), samples.png, interpolation.png

Variants (``:ARG``): small, tiny.
"""

import ml_collections

from vision.train import optim


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.task = "aae"
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "fashion_mnist"
  config.data.data_dir = ""
  config.data.image_size = ()
  config.data.train_split = "train[:55000]"
  config.data.val_split = "train[55000:]"
  config.data.test_split = "test"

  config.model = ml_collections.ConfigDict()
  config.model.name = "aae"
  config.model.hidden = (512, 512)
  config.model.latent_dim = 8
  config.model.discriminator_hidden = (256, 256)
  config.model.dtype = "float32"

  config.aae = ml_collections.ConfigDict()
  config.aae.disc_learning_rate = 2e-4
  config.aae.gen_learning_rate = 2e-4

  config.optim = optim.default_config(name="adam", learning_rate=1e-3, schedule="constant", b1=0.5)

  config.batch_size = 128
  config.num_epochs = 5
  config.num_steps = 0
  config.log_every = 50
  config.eval_every = 430
  config.checkpoint_every = 1000
  config.keep_checkpoints = 2
  config.progress = True

  if arg == "small":
    config.data.train_split = "train[:12000]"
    config.data.val_split = "train[55000:56000]"
    config.num_epochs = 2
    config.eval_every = 90
  elif arg == "tiny":
    config.data.train_split = "train[:256]"
    config.data.val_split = "train[256:384]"
    config.data.test_split = "test[:128]"
    config.model.hidden = (64,)
    config.model.latent_dim = 2
    config.model.discriminator_hidden = (32,)
    config.batch_size = 32
    config.num_epochs = 0
    config.num_steps = 8
    config.log_every = 2
    config.eval_every = 4
    config.checkpoint_every = 8
    config.progress = False
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use 'small' or 'tiny' (or nothing).")
  return config
