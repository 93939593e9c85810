"""GANs on Fashion-MNIST (offline): DCGAN (default), the dense GAN, the conditional DCGAN.

One jitted step updates the discriminator, then the generator (non-saturating
loss, Adam(2e-4, b1=0.5) each); samples and metrics come from an exponential
moving average of the generator. Metrics: ``fd``, the Fréchet distance between
10,000 samples and the 10,000 test images in the features of the project's
Fashion-MNIST CNN (not "FID", which means Inception features), next to
``fd_real_baseline`` (train vs test images, same extractor and count) and
``fd_untrained`` (the initial generator); ``class_entropy_bits`` of the CNN's
predictions on the samples (log2 10 = 3.32 when all classes are generated
equally often). The CNN is trained once and cached.

Command and expected result (2-core x86 CPU; run times: docs/performance.md):

  python scripts/train.py --config experiments/gan.py --workdir runs/dcgan
  # DCGAN, 4,000 steps of 64 (~4.3 epochs)
  # -> results.json: class_entropy_bits >= 3.0, fd < fd_untrained / 10
  #    measured: fd 27.8 (fd_untrained 312.7, fd_real_baseline 0.235),
  #    class_entropy_bits 3.29, fd_effnet 456 (docs/gans.md)

Variants (``:ARG``, comma-separated words; at most one model, one of small / tiny, one of
mnist / cifar10):
  dcgan (default) | dense | cdcgan | convt   model: the TensorFlow tutorial's DCGAN, a dense
                                             GAN, the class-conditional DCGAN, a DCGAN of four
                                             transposed convolutions
  small        a shorter run (800 steps)
  tiny         a few steps, a tiny model and a tiny feature classifier, for tests
  mnist        MNIST through TFDS (when prepared; feature classifier trained on MNIST)
  cifar10      one CIFAR-10 class in colour (``data.class_filter``, default 7 = horse)
  budget       stop every model after ``gan.time_budget_s`` = 400 CPU seconds of this process
               (``budget_clock='process'``: fair on a machine shared with other jobs)

The comparison table (dense vs DCGAN vs conditional DCGAN, same time budget):

  python scripts/sweep.py --config experiments/gan.py:budget --workdir runs/gan_sweep
  # add --config.gan.time_budget_s=1800 for a full-size comparison
"""

import ml_collections

from experiments import common

MODELS = {"dcgan": "dcgan", "dense": "dense_gan", "cdcgan": "cdcgan", "convt": "dcgan_convt"}
DATASETS = ("mnist", "cifar10")
VARIANTS = (*MODELS, *common.SIZES, *DATASETS, "budget")


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  size = common.pick(words, common.SIZES)
  dataset = common.pick(words, DATASETS)
  config = common.base("gan")
  config.data = common.data(train_split="train", class_filter=())  # (7,): one class only
  del config.data.val_split  # no validation: samples and metrics come from the generator

  config.model = ml_collections.ConfigDict()
  config.model.name = MODELS[common.pick(words, MODELS, "dcgan")]
  config.model.latent_dim = 100
  config.model.dtype = "float32"

  # Separate optimizers for the two players (DCGAN paper: Adam 2e-4, betas 0.5/0.999).
  config.g_optim = common.optim(name="adam", learning_rate=2e-4, schedule="constant", b1=0.5)
  config.d_optim = common.optim(name="adam", learning_rate=2e-4, schedule="constant", b1=0.5)

  config.gan = ml_collections.ConfigDict()
  config.gan.d_steps = 1  # discriminator updates per generator update
  config.gan.label_smoothing = 0.0  # one-sided: real targets 1 - s
  config.gan.ema_decay = 0.999  # average of the generator used for samples and metrics
  config.gan.num_samples = 10_000  # samples.npz and the metrics
  config.gan.sample_seed = 2024
  config.gan.grid_size = 64  # fixed-noise grid, one snapshot per epoch
  config.gan.grid_seed = 1234
  config.gan.snapshot_every = 0  # 0: one epoch
  config.gan.time_budget_s = 0.0  # >0: stop after this many seconds of training
  config.gan.budget_clock = "wall"  # or 'process': CPU seconds of this process (shared machines)

  config.eval = ml_collections.ConfigDict()
  config.eval.classifier = "experiments/cnn_fashion_mnist.py"  # '' skips fd / entropy
  config.eval.classifier_overrides = ()
  config.eval.classifier_dir = ""  # '' -> ~/.cache/vision/classifiers/<config hash>
  # fd_effnet in EfficientNet-Lite0 features on this many images; 0 skips it, and it is
  # skipped with a log line when the backbone or weights are missing.
  config.eval.effnet_samples = 2000
  config.eval.effnet_size = 96

  common.loop(
    config, num_epochs=0, num_steps=4000, batch_size=64, eval_every=0, checkpoint_every=500
  )

  if size == "small":
    config.num_steps = 800
    config.gan.snapshot_every = 100
  if dataset == "mnist":
    config.data.name = "mnist"
    config.eval.classifier_overrides = ("data.name=mnist", "aug.flip=False")
  if dataset == "cifar10":
    config.data.name = "cifar10"
    config.data.class_filter = (7,)
    config.gan.snapshot_every = 200
    config.eval.classifier_overrides = (
      "data.name=cifar10",
      "data.train_split=train[:45000]",
      "data.val_split=train[45000:]",
    )
  if "budget" in words:
    config.num_steps = 30_000  # an upper bound; the time budget stops the run
    config.gan.time_budget_s = 400.0
    config.gan.budget_clock = "process"
    config.gan.snapshot_every = 500
  if size == "tiny":
    common.tiny(config, train=512, test=256, num_steps=12, eval_every=0, checkpoint_every=4)
    config.model.name = "cdcgan_tiny" if config.model.name == "cdcgan" else "dcgan_tiny"
    config.model.latent_dim = 8
    config.gan.num_samples = 256
    config.gan.grid_size = 16
    config.gan.snapshot_every = 4
    config.eval.classifier = "experiments/cnn_fashion_mnist.py:tiny"
    config.eval.effnet_samples = 0
  return config


def get_sweep(arg=None):
  """Dense GAN vs DCGAN vs conditional DCGAN, each with the base config's budget."""
  del arg
  return [{"model.name": name} for name in ("dense_gan", "dcgan", "cdcgan")]
