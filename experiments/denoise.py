"""Denoising autoencoder on Fashion-MNIST: noisy input, clean target.

A fresh model, new noise every step (one fixed noise tensor could be learned
by heart), zero-mean noise (N(0.5, .) noise would also brighten the image).
``noise.kind``: 'gaussian' (std ``noise.level``, clipped to [0, 1]) or
'salt_pepper' (a fraction ``noise.level`` of pixels set to 0 or 1). The model
is the conv autoencoder of experiments/autoencoder.py, widened (32-32-32) so it
has room to denoise. Command and expected result (2-core x86 CPU, 4 epochs; run time:
docs/performance.md):

  python scripts/train.py --config experiments/denoise.py --workdir runs/denoise
  # -> results.json: test_psnr 17.5 dB vs baseline_psnr (the noisy input) 9.3 dB: +8.3 dB
  #    reconstructions.png: noisy / denoised / clean
  python scripts/train.py --config experiments/denoise.py --workdir runs/denoise_sp \\
      --config.noise.kind=salt_pepper --config.noise.level=0.3

Variants (``:ARG``, comma-separated words): classic (the narrow 16-8-8 autoencoder), small,
tiny.
"""

import ml_collections

from experiments import common

VARIANTS = ("classic", *common.SIZES)


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  size = common.pick(words, common.SIZES)
  config = common.base("denoise")
  config.data = common.data()

  config.noise = ml_collections.ConfigDict()
  config.noise.kind = "gaussian"  # 'gaussian' or 'salt_pepper'
  config.noise.level = 0.5  # gaussian std, or salt-and-pepper fraction

  config.model = common.conv_autoencoder((32, 32, 32), (32, 32, 32))
  config.loss = "bce"
  config.optim = common.optim(
    name="adam", learning_rate=2e-3, schedule="cosine", warmup_steps=100, final_lr_fraction=0.05
  )
  common.loop(config, num_epochs=4)

  if size == "small":
    common.small(config)
  elif size == "tiny":
    common.tiny(config)
    config.model = common.conv_autoencoder((8, 8, 8), (8, 8, 8))
  if "classic" in words:
    config.model = common.conv_autoencoder()
  return config
