"""Pictures: image grids, training curves, confusion matrices, labelled galleries (PNG)."""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def to_uint8(images) -> np.ndarray:
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  return (np.clip(images, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def image_grid(images, ncols: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
  """[N, H, W, C] -> one uint8 [rows*H, cols*W, C] mosaic."""
  images = to_uint8(images)
  if images.ndim == 3:
    images = images[..., None]
  n, h, w, c = images.shape
  ncols = ncols or math.ceil(math.sqrt(n))
  nrows = math.ceil(n / ncols)
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
  for i in range(n):
    r, col = divmod(i, ncols)
    top, left = pad + r * (h + pad), pad + col * (w + pad)
    grid[top : top + h, left : left + w] = images[i]
  return grid


def save_image(path: str, image) -> str:
  from PIL import Image

  image = to_uint8(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(image).save(path)
  return path


def save_grid(path: str, images, ncols: int | None = None) -> str:
  return save_image(path, image_grid(images, ncols))


def plot_curves(path: str, records: list[dict], keys: list[tuple[str, str]] | None = None) -> str:
  """Plots train vs validation curves from metrics.jsonl records.

  ``keys`` pairs a metric name with a panel title; by default every metric
  name found after its ``train/`` or ``val/`` prefix gets one panel.
  """
  names = sorted({k.split("/", 1)[1] for r in records for k in r if "/" in k})
  if keys is None:
    keys = [(name, name) for name in names if not name.startswith(("lr", "time"))]
  fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(5 * max(1, len(keys)), 3.6))
  axes = np.atleast_1d(axes)
  for ax, (name, title) in zip(axes, keys):
    for prefix, style in (("train", "-"), ("val", "o-")):
      key = f"{prefix}/{name}"
      points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
      if points:
        steps, values = zip(*points)
        ax.plot(steps, values, style, label=prefix, markersize=3)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def plot_confusion(path: str, confusion: np.ndarray, class_names: list[str]) -> str:
  """Row-normalized confusion matrix (rows: true class, columns: predicted)."""
  confusion = np.asarray(confusion, np.float64)
  rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
  n = len(class_names)
  size = max(4.0, 0.45 * n + 2)
  fig, ax = plt.subplots(figsize=(size, size))
  ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
  if n <= 40:
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), class_names, fontsize=7)
    if n <= 15:
      for i in range(n):
        for j in range(n):
          ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=6,
                  color="white" if rates[i, j] > 0.5 else "black")
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def labelled_gallery(path: str, images, titles: list[str], ncols: int = 8) -> str:
  """Images with a caption each (e.g. 'pred: Shirt / true: T-shirt')."""
  images = to_uint8(images)
  n = len(images)
  if n == 0:
    fig = plt.figure(figsize=(3, 1))
    fig.text(0.5, 0.5, "nothing to show", ha="center")
  else:
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows))
    for ax in np.atleast_1d(axes).ravel():
      ax.axis("off")
    for ax, image, title in zip(np.atleast_1d(axes).ravel(), images, titles):
      ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
      ax.set_title(title, fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
