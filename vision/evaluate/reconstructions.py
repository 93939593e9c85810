"""Results of image-to-image models on a test split: PSNR tables and reconstruction pictures.

Arrays in, numbers and picture files out: the plain, denoising and
super-resolution autoencoders and the latent-variable autoencoders (VAE, AAE)
report through these functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from vision import viz
from vision.evaluate import image_quality
from vision.evaluate.batched import batched_apply

PICTURE_COUNT = 12  # images per picture row


def split_arrays(split, limit: int = 0) -> dict[str, np.ndarray]:
  """The whole (or the first ``limit`` examples of a) split in memory: 'image' uint8, 'label'."""
  n = min(len(split), limit) if limit else len(split)
  return split.read(np.arange(n))


def psnr_results(per_image: dict[str, np.ndarray]) -> dict[str, float]:
  """Per-image 'loss', 'psnr' (and 'baseline_psnr') -> test means and the gain over the baseline.

  Keys: ``test_loss``, ``test_psnr``, ``test_examples``, and with a baseline
  ``baseline_psnr`` and ``psnr_gain_db`` (model minus baseline, dB).
  """
  results = {
    "test_loss": float(per_image["loss"].mean()),
    "test_psnr": float(per_image["psnr"].mean()),
    "test_examples": float(len(per_image["psnr"])),
  }
  if "baseline_psnr" in per_image:
    results["baseline_psnr"] = float(per_image["baseline_psnr"].mean())
    results["psnr_gain_db"] = results["test_psnr"] - results["baseline_psnr"]
  return results


# -- picture rows: (rows of images, one title per row) ---------------------------------------------
def reconstruction_rows(inputs, outputs, clean, count: int = PICTURE_COUNT):
  """Input and reconstruction (the input is the clean image)."""
  del clean
  return [inputs[:count], outputs[:count]], ["input", "reconstruction"]


def denoising_rows(inputs, outputs, clean, count: int = PICTURE_COUNT):
  """Noisy input, the network's output and the clean image."""
  return [inputs[:count], outputs[:count], clean[:count]], ["noisy", "denoised", "clean"]


def superres_rows(inputs, outputs, clean, scale: int, count: int = PICTURE_COUNT):
  """The small input shown with nearest-neighbour pixels, bicubic upsampling, the network, the
  original."""
  nearest = np.repeat(np.repeat(inputs[:count], scale, 1), scale, 2)
  bicubic = np.asarray(image_quality.bicubic_upsample(jnp.asarray(inputs[:count]), scale))
  return (
    [nearest, bicubic, outputs[:count], clean[:count]],
    [f"input x1/{scale}", "bicubic", "network", "original"],
  )


def save_rows(workdir: str, rows, titles, writer=None, step: int = 0) -> str:
  """``reconstructions.png`` (one titled row each); with a ``writer``, the same images as one
  TensorBoard grid ``test/reconstructions``."""
  path = viz.labelled_rows(os.path.join(workdir, "reconstructions.png"), rows, titles)
  if writer is not None:
    writer.write_images(
      step, {"test/reconstructions": viz.image_grid(np.concatenate(rows), ncols=len(rows[0]))}
    )
  return path


def random_code_pictures(
  workdir: str,
  encode: Callable[[np.ndarray], np.ndarray],
  decode: Callable[[np.ndarray], np.ndarray],
  images: np.ndarray,
  labels: np.ndarray,
  class_names,
  batch_size: int,
) -> dict[str, str]:
  """A plain autoencoder's code space is not generative: decodings of random codes.

  ``encode``/``decode`` are jitted batch functions (numpy in, arrays out). The
  codes of ``images`` give the box the 24 random codes are drawn from
  (``random_codes.png``); a 2-D code also gives ``latent_scatter.png``.
  """
  codes = batched_apply(lambda b: {"z": encode(b["x"])}, {"x": images}, batch_size)["z"]
  rng = np.random.default_rng(0)
  low, high = codes.min(0), codes.max(0)
  random_codes = rng.uniform(low, high, (24, *codes.shape[1:])).astype(np.float32)
  paths = {
    "random_codes": viz.save_grid(
      os.path.join(workdir, "random_codes.png"), decode(random_codes), ncols=12
    )
  }
  if codes.ndim == 2 and codes.shape[1] == 2:
    paths["latent_scatter"] = viz.plot_latent_scatter(
      os.path.join(workdir, "latent_scatter.png"),
      codes,
      labels,
      class_names,
      title="autoencoder: test codes (2-D bottleneck)",
    )
  return paths
