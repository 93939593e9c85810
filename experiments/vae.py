"""Variational autoencoder on Fashion-MNIST, dynamically binarized, with ELBO and IWAE.

The model is the ``vae`` workload of docs/performance.md (ConvVAE-28: Conv32-s2,
Conv64-s2, Dense(2*latent); Dense(7*7*32), ConvT64-s2, ConvT32-s2, ConvT1
logits), Bernoulli likelihood + analytic KL with one meaning of ``logvar``
(log-variance), Adam 1e-3. Data protocol: train on a fresh Bernoulli sample of
the grey levels every step; test on one fixed-seed binarization of the 10,000
test images. Reported (nats per image): test_neg_elbo = test_recon + test_kl
(one sample), and test_iwae_nll, the IWAE bound with K=100 samples on the
first ``vae.iwae_examples`` test images (a tighter estimate of -log p(x)).
Commands and expected results (2-core x86 CPU; run time: docs/performance.md):

  python scripts/train.py --config experiments/vae.py --workdir runs/vae
  # -> results.json: test_neg_elbo = test_recon + test_kl and test_iwae_nll (nats);
  #    latent_scatter.png, latent_grid.png (20x20 over N(0, I) quantiles), samples.png,
  #    interpolation.png, reconstructions.png

  python scripts/sweep.py --config experiments/vae.py --seeds 3 --workdir runs/vae_sweep_3seeds
  # -> latent 2, 10, 32, 2 epochs each, seeds 0-2 (the README table, mean of the seeds):
  #    -ELBO 282.1 / 256.5 / 259.7 and IWAE 276.9 / 249.2 / 248.8 nats

Variants (``:ARG``, comma-separated words):
  dense   a dense 784-512-2 VAE (Bernoulli likelihood instead of MSE*784)
  small   a smoke run (2 epochs on 12,000 images)
  tiny    a few steps, for tests
Flags: vae.beta (beta-VAE), vae.kl_warmup_steps (linear KL warm-up), vae.likelihood
('bernoulli' or 'gaussian' with vae.binarize='none'), model.latent_dim.
"""

import ml_collections

from experiments import common

VARIANTS = ("dense", *common.SIZES)


def get_config(arg=None):
  words = common.parse_words(arg, VARIANTS)
  size = common.pick(words, common.SIZES)
  config = common.base("vae")
  config.data = common.data()  # or name='mnist' (TFDS, once prepared)

  config.model = ml_collections.ConfigDict()
  config.model.name = "conv_vae"
  config.model.latent_dim = 2
  config.model.dtype = "float32"

  config.vae = ml_collections.ConfigDict()
  config.vae.likelihood = "bernoulli"  # or 'gaussian' (then binarize='none')
  config.vae.gaussian_log_scale = -2.0  # log std of the Gaussian likelihood
  config.vae.binarize = "dynamic"  # 'dynamic' or 'none' (grey levels)
  config.vae.test_binarization_seed = 0
  config.vae.beta = 1.0
  config.vae.kl_warmup_steps = 0
  # The gradient from this many concurrent batch shards (same numbers, faster on
  # a few CPU cores; vision/ops/shards.py). 0: 2 with kernels 'cpu', 1 with 'portable'.
  config.vae.grad_shards = 0
  config.vae.iwae_samples = 100
  config.vae.iwae_chunk = 20
  config.vae.iwae_batch_size = 100
  config.vae.iwae_examples = 1000  # 0: the whole test split

  config.optim = common.optim(
    name="adam", learning_rate=1e-3, schedule="cosine", warmup_steps=100, final_lr_fraction=0.1
  )
  common.loop(config, num_epochs=3)

  if "dense" in words:
    config.model = ml_collections.ConfigDict(
      dict(name="dense_vae", hidden=(512,), latent_dim=2, dtype="float32")
    )
  if size == "small":
    common.small(config, test=2000)
    config.vae.iwae_examples = 500
  elif size == "tiny":
    common.tiny(config, test=64)
    config.vae.kl_warmup_steps = 4
    config.vae.iwae_samples = 100
    config.vae.iwae_chunk = 50
    config.vae.iwae_batch_size = 32
    config.vae.iwae_examples = 0
  return config


def get_sweep(arg=None):
  del arg
  return [{"model.latent_dim": d, "num_epochs": 2} for d in (2, 10, 32)]
