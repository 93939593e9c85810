"""Image-space optimization through ``jax.grad``: attacks, visualization, style transfer.

* :mod:`vision.optimize.attacks` - FGSM and PGD (L-inf / L2, targeted or not).
* :mod:`vision.optimize.visualize` - class and feature visualization from noise
  (decorrelated Fourier parameterization, random jitter / scale / rotation).
* :mod:`vision.optimize.style` - neural style transfer (Gatys et al.) with Adam or L-BFGS.
* :mod:`vision.optimize.frozen` - frozen networks as functions of the image.
* :mod:`vision.optimize.losses` - total variation and cross-entropy per image.

Everything takes images in pixel space [0, 1]; models normalize inside. The runs
that read a config and write pictures (attacks on photos, robustness curves,
visualization, style transfer) are in :mod:`vision.drivers`.
"""

from vision.optimize.attacks import attack, attack_objective, attack_success, fgsm, pgd
from vision.optimize.frozen import features_fn, logits_fn
from vision.optimize.losses import total_variation
from vision.optimize.style import gram_matrix, stylize
from vision.optimize.visualize import ImageParam, Transforms, optimize_image

__all__ = [
  "ImageParam",
  "Transforms",
  "attack",
  "attack_objective",
  "attack_success",
  "features_fn",
  "fgsm",
  "gram_matrix",
  "logits_fn",
  "optimize_image",
  "pgd",
  "stylize",
  "total_variation",
]
