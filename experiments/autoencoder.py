"""A small convolutional autoencoder on Fashion-MNIST (offline, Debian's IDX files).

Encoder Conv16-Pool, Conv8-Pool, Conv8-Pool (a 4x4x8 = 128-value code), mirrored
decoder with nearest-neighbour upsampling, logits + binary cross-entropy on the
grey levels, Adam 1e-3. Command and what to look for (2-core x86 CPU, 5 epochs; only the
``tiny`` variant is tested):

  python scripts/train.py --config experiments/autoencoder.py --workdir runs/autoencoder
  # -> results.json: test_loss (per-pixel BCE on grey levels) and test_psnr on the 10,000 test
  #    images. Not comparable with BCE figures on MNIST (e.g. 0.095): MNIST is mostly black,
  #    so its BCE floor is much lower. reconstructions.png, random_codes.png

Variants (``:ARG``, comma-separated words):
  latent2 a dense 2-D bottleneck after the conv part; latent_scatter.png
  small   a smoke run (2 epochs on 12,000 images)
  tiny    a few steps, for tests (with the 2-D bottleneck)
"""

from experiments import common

VARIANTS = ("latent2", *common.SIZES)


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  size = common.pick(words, common.SIZES)
  config = common.base("autoencoder")
  config.data = common.data()  # or name='mnist' (TFDS, once prepared), 'digits'
  config.model = common.conv_autoencoder()
  config.loss = "bce"  # 'bce' on logits or 'mse' of the sigmoid
  config.optim = common.optim(
    name="adam", learning_rate=1e-3, schedule="cosine", warmup_steps=100, final_lr_fraction=0.1
  )
  common.loop(config, num_epochs=5)

  if "latent2" in words:
    config.model.latent_dim = 2
  if size == "small":
    common.small(config)
  elif size == "tiny":
    common.tiny(config)
    config.model.latent_dim = 2
  return config
