"""Fréchet distance between two sets of feature vectors, each summarized as a Gaussian.

    FD = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})

This is the formula of the FID (Heusel et al. 2017). Which features it is
computed in is what gives the number its meaning, so the callers name it for
that: "FID" is reserved for Inception-v3 pool features; this project reports
``fd`` in the features of its own Fashion-MNIST CNN and ``fd_effnet`` in
EfficientNet-Lite0 features. A number is only comparable with numbers of the
same extractor and sample count (the estimate is biased upwards for small
samples), which is why it is always reported next to a real-vs-real baseline.

``tr((S_1 S_2)^{1/2})`` is computed without a general matrix square root:
with ``A = S_1^{1/2}`` (symmetric), ``S_1 S_2`` is similar to the symmetric PSD
matrix ``A S_2 A``, so the trace is the sum of the square roots of its
eigenvalues. Two ``eigh`` calls in float64, no complex parts to discard
(``scipy.linalg.sqrtm`` of the non-symmetric product is what the tests compare with).
"""

from __future__ import annotations

import numpy as np


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
  """[N, D] features -> (mean [D], unbiased covariance [D, D]) in float64."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f"need features [N >= 2, D], got shape {features.shape}.")
  return features.mean(0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric PSD matrix (negative rounding noise clipped)."""
  w, v = np.linalg.eigh((matrix + matrix.T) / 2)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """``tr((S_1 S_2)^{1/2})`` for symmetric PSD ``S_1``, ``S_2``."""
  root1 = _sqrt_psd(np.asarray(sigma1, np.float64))
  inner = root1 @ np.asarray(sigma2, np.float64) @ root1  # [D, D], similar to S_1 S_2
  eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
  return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(f"shapes differ: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}.")
  diff = mu1 - mu2
  value = (
    diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
  )
  return float(max(value, 0.0))  # >= 0 mathematically; clip float rounding


def frechet_distance_of_features(features1, features2) -> float:
  """Fréchet distance between the Gaussians fitted to two [N, D] feature sets."""
  return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))


def class_entropy_bits(predicted_classes, num_classes: int) -> tuple[float, np.ndarray]:
  """Entropy (bits) of the histogram of predicted classes, and the histogram (fractions).

  ``log2(num_classes)`` when every class is generated equally often; a
  generator that has collapsed onto a few modes scores far lower.
  """
  counts = np.bincount(np.asarray(predicted_classes).ravel(), minlength=num_classes)
  p = counts / max(counts.sum(), 1)
  nonzero = p[p > 0]
  return float(-np.sum(nonzero * np.log2(nonzero))), p
