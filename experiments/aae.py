"""Adversarial autoencoder on Fashion-MNIST, with a latent discriminator that is really trained.

Dense encoder 784-512-512-latent, mirrored decoder (logits, BCE on grey
levels), discriminator latent-256-256-1 against an N(0, I) prior. One jitted
step: reconstruction update (Adam ``optim.learning_rate``), discriminator
update (``aae.disc_learning_rate``), encoder-as-generator update
(``aae.gen_learning_rate``), three optax states. The discriminator update steps
the discriminator's own optimizer (stepping the decoder's leaves D at chance,
disc loss 1.39 = 2 ln 2) and D ends in one logit.
Command and expected result (2-core x86 CPU, 5 epochs; run time: docs/performance.md):

  python scripts/train.py --config experiments/aae.py --workdir runs/aae
  # -> results.json: test_recon_bce 0.301 (per pixel), test_psnr 17.8 dB, test_d_accuracy 0.68
  #    (D is trained: train d_loss 0.8-1.2 < 2 ln 2), codes per dimension with mean abs 0.19 and
  #    std 1.3 (test_code_mean_abs, test_code_std); latent_scatter.png (first two code
  #    dimensions over prior samples), samples.png, interpolation.png

Variants (``:ARG``): small, tiny.
"""

import ml_collections

from experiments import common

VARIANTS = common.SIZES


def get_config(arg=None):
  size = common.pick(common.parse_words(arg, VARIANTS), common.SIZES)
  config = common.base("aae")
  config.data = common.data()

  config.model = ml_collections.ConfigDict()
  config.model.name = "aae"
  config.model.hidden = (512, 512)
  config.model.latent_dim = 8
  config.model.discriminator_hidden = (256, 256)
  config.model.dtype = "float32"

  config.aae = ml_collections.ConfigDict()
  config.aae.disc_learning_rate = 2e-4
  config.aae.gen_learning_rate = 2e-4

  config.optim = common.optim(name="adam", learning_rate=1e-3, schedule="constant", b1=0.5)
  common.loop(config, num_epochs=5)

  if size == "small":
    common.small(config)
  elif size == "tiny":
    common.tiny(config, num_steps=8)
    config.model.hidden = (64,)
    config.model.latent_dim = 2
    config.model.discriminator_hidden = (32,)
  return config
