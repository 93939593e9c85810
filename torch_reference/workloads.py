"""The four benchmark workloads of docs/benchmarks.md, in PyTorch.

An independent implementation of the steps the project times with
``scripts/benchmark.py``, written from the workloads' definition, so that the
same computation can be timed in both frameworks on one machine
(``scripts/bench_torch.py``, paired by ``scripts/compare_torch.py``):

* ``dcgan``: DCGAN-28 (the networks of :mod:`vision.models.gan`'s ``dcgan``),
  256 real + 256 generated 28x28x1 images; one discriminator update (binary
  cross-entropy on the real and the generated images, dropout on), then one
  generator update through the updated discriminator (non-saturating loss,
  reusing the generated batch and its graph), Adam 1e-4 for each player;
* ``vae``: ConvVAE-28 with a 2-d latent (:mod:`vision.models.vae`'s
  ``conv_vae``), 128 images binarized afresh every step, a reparameterized
  sample, Bernoulli log-likelihood plus the analytic KL to N(0, I), Adam 1e-4;
* ``finetune``: EfficientNet-Lite0 with a 37-way head, batch norm in training
  mode, 32 images at 224x224, cross-entropy, SGD(0.01, momentum 0.9) on every
  parameter;
* ``pgd``: EfficientNet-Lite0 (1000 classes) frozen in eval mode, 32 images at
  224x224; one L-inf PGD step on the pixels: the gradient of the cross-entropy
  with respect to the input (through the model's input mapping), a sign step of
  2/255, projection onto the 8/255 ball around the clean images and onto [0, 1].

Every network is NCHW, PyTorch's default layout. Convolutions use symmetric
padding ``k // 2`` (plus ``output_padding`` for the stride-2 transposed ones),
which gives the shapes of the project's TF-style SAME padding; the cost is the
same, only where the padding sits differs (EfficientNet-Lite0 keeps its
TF-style padding, as the project's does). The DCGAN's batch-norm and dropout
settings are the project's (momentum 0.1 in PyTorch's convention, eps 1e-5;
dropout 0.3), EfficientNet-Lite0's those of its weights (eps 1e-3).
The weights are PyTorch's default initialization rather than the project's
N(0, 0.05) draw for ``pgd``: the time does not depend on the values as long as
they stay clear of float32's subnormal range, which PyTorch computes at full
(slow) precision on the CPU, and through the frozen network's 16 blocks the
default initialization keeps the input gradient far from it.

Measurement (docs/benchmarks.md): random inputs (uint8 images drawn once, per
step noise drawn in the step as the project's steps do), PyTorch's default
random initialization and thread settings; two warm-up calls, then the
median of ``repeats`` timed calls (10 for ``dcgan`` and ``vae``, 5 for
``finetune`` and ``pgd``), one step per call. On a GPU every timed call ends
with ``torch.cuda.synchronize()`` before the clock is read. ``dtype='bfloat16'``
runs forward pass and loss under ``torch.autocast(device, torch.bfloat16)``
with float32 parameters and optimizer state (mixed precision).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from torch_reference.efficientnet_lite0 import EfficientNetLite0

WORKLOADS = ("dcgan", "vae", "finetune", "pgd")
DTYPES = ("float32", "bfloat16")
DEVICES = ("cpu", "cuda")
DEFAULT_REPEATS = {"dcgan": 10, "vae": 10, "finetune": 5, "pgd": 5}
WARMUP = 2

LATENT_DIM = 100  # the DCGAN generator's noise
VAE_LATENT_DIM = 2
FINETUNE_CLASSES = 37
PGD_EPS = 8 / 255
PGD_STEP = 2 / 255


# -- networks -------------------------------------------------------------------------------------
class DCGANGenerator(nn.Module):
  """Dense(100 -> 7*7*256, no bias) -> BN -> LReLU(0.3) -> ConvT(128, 5x5, s1) -> BN -> LReLU ->
  ConvT(64, 5x5, s2) -> BN -> LReLU -> ConvT(1, 5x5, s2) -> tanh; images in [-1, 1].

  As in the project's generator, the first batch norm normalizes each of the
  7*7*256 dense outputs before the reshape, and no transposed convolution has a bias.
  """

  def __init__(self, latent_dim: int = LATENT_DIM, widths=(256, 128, 64), channels: int = 1):
    super().__init__()
    self.start = widths[0]
    self.project = nn.Linear(latent_dim, 7 * 7 * widths[0], bias=False)
    self.bn0 = nn.BatchNorm1d(7 * 7 * widths[0])
    self.convt1 = nn.ConvTranspose2d(widths[0], widths[1], 5, 1, padding=2, bias=False)
    self.bn1 = nn.BatchNorm2d(widths[1])
    self.convt2 = nn.ConvTranspose2d(widths[1], widths[2], 5, 2, 2, output_padding=1, bias=False)
    self.bn2 = nn.BatchNorm2d(widths[2])
    self.convt3 = nn.ConvTranspose2d(widths[2], channels, 5, 2, 2, output_padding=1, bias=False)

  def forward(self, z):
    x = F.leaky_relu(self.bn0(self.project(z)), 0.3).view(-1, self.start, 7, 7)
    x = F.leaky_relu(self.bn1(self.convt1(x)), 0.3)  # [B, 128, 7, 7]
    x = F.leaky_relu(self.bn2(self.convt2(x)), 0.3)  # [B, 64, 14, 14]
    return torch.tanh(self.convt3(x))  # [B, 1, 28, 28]


class DCGANDiscriminator(nn.Module):
  """Conv(64, 5x5, s2) -> LReLU(0.3) -> Dropout(0.3) -> Conv(128, 5x5, s2) -> LReLU ->
  Dropout(0.3) -> Dense(1): one logit per image."""

  def __init__(self, widths=(64, 128), channels: int = 1, dropout: float = 0.3):
    super().__init__()
    self.conv1 = nn.Conv2d(channels, widths[0], 5, 2, padding=2)
    self.conv2 = nn.Conv2d(widths[0], widths[1], 5, 2, padding=2)
    self.dropout = nn.Dropout(dropout)
    self.out = nn.Linear(7 * 7 * widths[1], 1)

  def forward(self, images):
    x = self.dropout(F.leaky_relu(self.conv1(images), 0.3))  # [B, 64, 14, 14]
    x = self.dropout(F.leaky_relu(self.conv2(x), 0.3))  # [B, 128, 7, 7]
    return self.out(x.flatten(1))[:, 0]


class ConvVAE(nn.Module):
  """Encoder Conv(32, 3x3, s2) -> ReLU -> Conv(64, 3x3, s2) -> ReLU -> Dense(2 * latent) (mean
  and log-variance); decoder Dense(7*7*32) -> ReLU -> ConvT(64, 3x3, s2) -> ReLU ->
  ConvT(32, 3x3, s2) -> ReLU -> ConvT(1, 3x3, s1): Bernoulli logits."""

  def __init__(self, latent_dim: int = VAE_LATENT_DIM):
    super().__init__()
    self.encoder = nn.Sequential(
      nn.Conv2d(1, 32, 3, 2, padding=1),
      nn.ReLU(),
      nn.Conv2d(32, 64, 3, 2, padding=1),
      nn.ReLU(),
      nn.Flatten(),
      nn.Linear(7 * 7 * 64, 2 * latent_dim),
    )
    self.decoder = nn.Sequential(
      nn.Linear(latent_dim, 7 * 7 * 32),
      nn.ReLU(),
      nn.Unflatten(1, (32, 7, 7)),
      nn.ConvTranspose2d(32, 64, 3, 2, padding=1, output_padding=1),
      nn.ReLU(),
      nn.ConvTranspose2d(64, 32, 3, 2, padding=1, output_padding=1),
      nn.ReLU(),
      nn.ConvTranspose2d(32, 1, 3, 1, padding=1),
    )

  def forward(self, images, noise):
    """``(logits, mean, logvar)``; ``noise`` [B, latent] ~ N(0, I) is the reparameterization's."""
    mean, logvar = self.encoder(images).float().chunk(2, dim=1)
    z = mean + torch.exp(0.5 * logvar) * noise
    return self.decoder(z).float(), mean, logvar


def lite_input(images):
  """EfficientNet-Lite's input mapping of [0, 1] pixels, ``(x * 255 - 127) / 128``, which the
  project's model applies inside its forward pass."""
  return (images * 255 - 127) / 128


# -- steps ----------------------------------------------------------------------------------------
def _autocast(device: str, dtype: str):
  """Mixed precision around forward pass and loss for bfloat16; nothing for float32."""
  if dtype == "bfloat16":
    return torch.autocast(device_type=device, dtype=torch.bfloat16)
  return contextlib.nullcontext()


def _uint8_images(shape, generator: torch.Generator, device: str):
  return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8).to(device)


class DCGANStep:
  """One discriminator update, then one generator update (module docstring)."""

  def __init__(self, device: str = "cpu", dtype: str = "float32", batch_size: int = 256):
    g = torch.Generator().manual_seed(0)
    self.device, self.dtype, self.images_per_call = device, dtype, batch_size
    self.generator = DCGANGenerator().to(device).train()
    self.discriminator = DCGANDiscriminator().to(device).train()
    self.g_optim = torch.optim.Adam(self.generator.parameters(), lr=1e-4)
    self.d_optim = torch.optim.Adam(self.discriminator.parameters(), lr=1e-4)
    self.real = _uint8_images((batch_size, 1, 28, 28), g, device)

  def __call__(self):
    real = self.real.float() / 127.5 - 1.0  # [-1, 1], the generator's range
    z = torch.randn(self.real.shape[0], LATENT_DIM, device=self.device)
    ones = torch.ones(self.real.shape[0], device=self.device)
    with _autocast(self.device, self.dtype):
      fakes = self.generator(z)
      real_logits = self.discriminator(real).float()
      fake_logits = self.discriminator(fakes.detach()).float()
      real_loss = F.binary_cross_entropy_with_logits(real_logits, ones)
      fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(ones))
      d_loss = real_loss + fake_loss
    self.d_optim.zero_grad(set_to_none=True)
    d_loss.backward()
    self.d_optim.step()
    # The generator's loss needs the gradient with respect to the images only: the
    # discriminator's parameters are frozen for this pass, as in the project's step.
    self.discriminator.requires_grad_(False)
    with _autocast(self.device, self.dtype):
      g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fakes).float(), ones)
    self.g_optim.zero_grad(set_to_none=True)
    g_loss.backward()
    self.g_optim.step()
    self.discriminator.requires_grad_(True)
    return d_loss.detach(), g_loss.detach()


class VAEStep:
  """One Adam update of the ConvVAE on a freshly binarized batch (module docstring)."""

  def __init__(self, device: str = "cpu", dtype: str = "float32", batch_size: int = 128):
    g = torch.Generator().manual_seed(0)
    self.device, self.dtype, self.images_per_call = device, dtype, batch_size
    self.model = ConvVAE().to(device).train()
    self.optim = torch.optim.Adam(self.model.parameters(), lr=1e-4)
    self.images = _uint8_images((batch_size, 1, 28, 28), g, device)

  def __call__(self):
    images = torch.bernoulli(self.images.float() / 255.0)  # dynamic binarization
    noise = torch.randn(images.shape[0], VAE_LATENT_DIM, device=self.device)
    with _autocast(self.device, self.dtype):
      logits, mean, logvar = self.model(images, noise)
      recon = F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum((1, 2, 3))
      kl = 0.5 * torch.sum(logvar.exp() + mean.square() - 1.0 - logvar, dim=1)
      loss = torch.mean(recon + kl)  # the negative ELBO per image
    self.optim.zero_grad(set_to_none=True)
    loss.backward()
    self.optim.step()
    return loss.detach()


class FinetuneStep:
  """One SGD(momentum 0.9) update of every parameter of EfficientNet-Lite0 with a 37-way head,
  batch norm in training mode (module docstring)."""

  def __init__(
    self, device: str = "cpu", dtype: str = "float32", batch_size: int = 32, size: int = 224
  ):
    g = torch.Generator().manual_seed(0)
    self.device, self.dtype, self.images_per_call = device, dtype, batch_size
    self.model = EfficientNetLite0(num_classes=FINETUNE_CLASSES).to(device).train()
    self.optim = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
    self.images = _uint8_images((batch_size, 3, size, size), g, device)
    self.labels = torch.randint(0, FINETUNE_CLASSES, (batch_size,), generator=g).to(device)

  def __call__(self):
    images = lite_input(self.images.float() / 255.0)
    with _autocast(self.device, self.dtype):
      loss = F.cross_entropy(self.model(images).float(), self.labels)
    self.optim.zero_grad(set_to_none=True)
    loss.backward()
    self.optim.step()
    return loss.detach()


class PGDStep:
  """One L-inf PGD step on the pixels of a frozen EfficientNet-Lite0; the iterate is kept in
  ``self.x`` and carried from one call into the next (module docstring)."""

  def __init__(
    self, device: str = "cpu", dtype: str = "float32", batch_size: int = 32, size: int = 224
  ):
    g = torch.Generator().manual_seed(0)
    self.device, self.dtype, self.images_per_call = device, dtype, batch_size
    self.model = EfficientNetLite0().to(device).eval().requires_grad_(False)
    self.x0 = torch.rand((batch_size, 3, size, size), generator=g).to(device)
    self.labels = torch.randint(0, 1000, (batch_size,), generator=g).to(device)
    self.x = self.x0.clone()

  def __call__(self):
    x = self.x.detach().requires_grad_(True)
    with _autocast(self.device, self.dtype):
      logits = self.model(lite_input(x)).float()
      loss = F.cross_entropy(logits, self.labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    with torch.no_grad():
      x = x + PGD_STEP * grad.sign()
      x = torch.minimum(torch.maximum(x, self.x0 - PGD_EPS), self.x0 + PGD_EPS).clamp_(0.0, 1.0)
    self.x = x
    return loss.detach()


STEPS: dict[str, Callable] = {
  "dcgan": DCGANStep,
  "vae": VAEStep,
  "finetune": FinetuneStep,
  "pgd": PGDStep,
}


# -- timing ---------------------------------------------------------------------------------------
def time_step(step, device: str, repeats: int, warmup: int = WARMUP) -> tuple[float, float]:
  """``(median, min)`` seconds of ``repeats`` calls of ``step`` after ``warmup`` untimed ones;
  on a GPU each call is synchronized before the clock is read."""
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  for _ in range(warmup):
    step()
  sync()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    step()
    sync()
    times.append(time.perf_counter() - start)
  return statistics.median(times), min(times)


def measure(name: str, device: str = "cpu", dtype: str = "float32", repeats: int | None = None):
  """``(images_per_call, seconds_per_step_median, seconds_min)`` of workload ``name``."""
  if name not in STEPS:
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}.")
  if dtype not in DTYPES:
    raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}.")
  if device not in DEVICES:
    raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}.")
  torch.manual_seed(0)  # the noise drawn inside the steps
  step = STEPS[name](device, dtype)
  median, fastest = time_step(step, device, repeats or DEFAULT_REPEATS[name])
  return step.images_per_call, median, fastest


def dcgan(device: str = "cpu", dtype: str = "float32", repeats: int | None = None):
  """The ``dcgan`` workload: ``(images_per_call, seconds_per_step_median, seconds_min)``."""
  return measure("dcgan", device, dtype, repeats)


def vae(device: str = "cpu", dtype: str = "float32", repeats: int | None = None):
  """The ``vae`` workload: ``(images_per_call, seconds_per_step_median, seconds_min)``."""
  return measure("vae", device, dtype, repeats)


def finetune(device: str = "cpu", dtype: str = "float32", repeats: int | None = None):
  """The ``finetune`` workload: ``(images_per_call, seconds_per_step_median, seconds_min)``."""
  return measure("finetune", device, dtype, repeats)


def pgd(device: str = "cpu", dtype: str = "float32", repeats: int | None = None):
  """The ``pgd`` workload: ``(images_per_call, seconds_per_step_median, seconds_min)``."""
  return measure("pgd", device, dtype, repeats)


def resolve_device(device: str) -> str:
  """``'auto'`` is ``'cuda'`` when PyTorch sees a GPU, else ``'cpu'``; others pass through."""
  if device == "auto":
    return "cuda" if torch.cuda.is_available() else "cpu"
  return device


def result_line(
  name: str, device: str = "cpu", dtype: str = "float32", repeats: int | None = None
) -> dict:
  """Times workload ``name`` and returns its JSON line (the fields of docs/benchmarks.md)."""
  images, median, fastest = measure(name, device, dtype, repeats)
  return {
    "workload": name,
    "images_per_s": round(images / median, 2),
    "ms_per_step": round(1e3 * median, 2),
    "min_ms_per_step": round(1e3 * fastest, 2),
    "repeats": repeats or DEFAULT_REPEATS[name],
    "device": device,
    "dtype": dtype,
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
  }
