"""Super-resolution on Fashion-MNIST: x2 from 14x14 (``scale=2``) or x4 from 7x7 (``scale=4``).

Inputs are box-filtered (average pooling) copies of the 28x28 images. The
default model is an ESPCN-style net (convolutions at low resolution, learned
sub-pixel x2 upsampling) whose zero-initialized output is added to the bicubic
upsampling in logit space, so it starts at the bicubic baseline and learns the
missing detail; variant ``classic`` is the plain 16-8-8 conv autoencoder of
experiments/autoencoder.py. Loss: MSE (PSNR is what is measured).
Command and expected result (2-core x86 CPU, 2 epochs; run time: docs/performance.md):

  python scripts/train.py --config experiments/superres.py --workdir runs/superres_x2
  # -> results.json: test_psnr 24.0 dB vs baseline_psnr (clipped bicubic) 19.3 dB: +4.7 dB
  python scripts/train.py --config experiments/superres.py --workdir runs/superres_x4 \\
      --config.scale=4

Variants (``:ARG``, comma-separated words): classic, small, tiny.
"""

import ml_collections

from experiments import common

VARIANTS = ("classic", *common.SIZES)


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  size = common.pick(words, common.SIZES)
  config = common.base("superres")
  config.data = common.data()

  config.scale = 2  # 2: 14x14 -> 28x28, 4: 7x7 -> 28x28

  config.model = ml_collections.ConfigDict()
  config.model.name = "superres_net"
  config.model.width = 32
  config.model.depth = 3
  config.model.dtype = "float32"

  config.loss = "mse"
  config.optim = common.optim(
    name="adam", learning_rate=2e-3, schedule="cosine", warmup_steps=100, final_lr_fraction=0.05
  )
  common.loop(config, num_epochs=2)

  if size == "small":
    common.small(config)
  elif size == "tiny":
    common.tiny(config)
    config.model.width = 8
    config.model.depth = 2
  if "classic" in words:
    config.model = common.conv_autoencoder()
    config.loss = "bce"
  return config
