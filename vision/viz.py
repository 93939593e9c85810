"""Pictures: image grids, training curves, confusion matrices, galleries, attack curves (PNG)."""

from __future__ import annotations

import io
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image
from scipy.stats import norm


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
    series = [
      (f"{prefix}/{name}", prefix, style) for prefix, style in (("train", "-"), ("val", "o-"))
    ]
    _plot_series(ax, records, series, title)
  return _save_figure(fig, path)


def _plot_series(ax, records: list[dict], series, title: str) -> None:
  """One panel: each ``(key, label, style)`` of ``series`` against the step of its records."""
  for key, label, style in series:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    if points:
      steps, values = zip(*points)
      ax.plot(steps, values, style, label=label, markersize=3)
  ax.set_title(title)
  ax.set_xlabel("step")
  ax.grid(alpha=0.3)
  if ax.get_lines():  # a run too short to log a value has an empty panel
    ax.legend()


def _save_figure(fig, path: str) -> str:
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
          ax.text(
            j,
            i,
            f"{rates[i, j]:.2f}",
            ha="center",
            va="center",
            fontsize=6,
            color="white" if rates[i, j] > 0.5 else "black",
          )
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


# -- autoencoders and latent spaces ------------------------------------------------------------
def labelled_rows(path: str, rows, row_titles: list[str], scale: float = 0.55) -> str:
  """Rows of images (e.g. input / reconstruction / target), one title per row, as one figure."""
  grids = [image_grid(np.asarray(r), ncols=len(r), pad=1) for r in rows]
  height = sum(g.shape[0] for g in grids)
  width = max(g.shape[1] for g in grids)
  figsize = (scale * width / 16 + 1.2, 1.25 * scale * height / 16 + 0.2)
  fig, axes = plt.subplots(len(grids), 1, figsize=figsize, squeeze=False)
  for ax, grid, title in zip(axes[:, 0], grids, row_titles):
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def gaussian_quantile_grid(n: int = 20, low: float = 0.05, high: float = 0.95) -> np.ndarray:
  """``n`` points of a 1-D standard normal at evenly spaced quantiles (the Keras blog's grid)."""

  return norm.ppf(np.linspace(low, high, n))


def plot_latent_scatter(
  path: str, z, labels, class_names: list[str] | None = None, prior=None, title: str = ""
) -> str:
  """Test encodings (first two latent dimensions) coloured by class; optional prior samples."""
  z, labels = np.asarray(z), np.asarray(labels)
  fig, ax = plt.subplots(figsize=(6.4, 5.2))
  if prior is not None:
    prior = np.asarray(prior)
    ax.scatter(prior[:, 0], prior[:, 1], s=1, c="lightgrey", label="prior N(0, I)", rasterized=True)
  points = ax.scatter(
    z[:, 0], z[:, 1], c=labels, cmap="tab10", s=1.5, alpha=0.7, vmin=-0.5, vmax=9.5, rasterized=True
  )
  bar = fig.colorbar(points, ax=ax, ticks=range(10))
  if class_names is not None:
    bar.ax.set_yticklabels(list(class_names)[:10], fontsize=7)
  if prior is not None:
    ax.legend(loc="upper right", fontsize=7, markerscale=6)
  ax.set_xlabel("z[0]")
  ax.set_ylabel("z[1]")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path


def plot_latent_grid(path: str, images, values: np.ndarray, title: str = "") -> str:
  """Decodings over a 2-D latent grid: ``images`` [n*n, H, W, C] row-major, rows = z[1] top-down.

  ``values`` [n] are the grid coordinates along each axis (shown as tick labels).
  """
  n = len(values)
  grid = image_grid(images, ncols=n, pad=0)
  h, w = grid.shape[0] // n, grid.shape[1] // n
  fig, ax = plt.subplots(figsize=(7.5, 7.5))
  ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray")
  ticks = range(0, n, max(1, n // 5))
  ax.set_xticks([w * i + w / 2 for i in ticks], [f"{values[i]:.2f}" for i in ticks], fontsize=7)
  ax.set_yticks(
    [h * i + h / 2 for i in ticks], [f"{values[::-1][i]:.2f}" for i in ticks], fontsize=7
  )
  ax.set_xlabel("z[0]")
  ax.set_ylabel("z[1]")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  _save_greyscale(fig, path, dpi=90)
  return path


def _save_greyscale(fig, path: str, dpi: int) -> None:
  """Saves a figure as an 8-bit grey PNG: a quarter of the RGBA size for grey pictures."""

  buffer = io.BytesIO()
  fig.savefig(buffer, dpi=dpi, format="png")
  plt.close(fig)
  buffer.seek(0)
  Image.open(buffer).convert("L").save(path, optimize=True)


# -- GANs (appended for issue 6) ------------------------------------------------------------------
def evolution_strip(path: str, grids, steps, ncols: int = 10, max_rows: int = 12) -> str:
  """One row per snapshot (the first ``ncols`` fixed-noise samples), labelled with its step."""
  keep = np.unique(np.linspace(0, len(grids) - 1, min(max_rows, len(grids))).round().astype(int))
  rows = [image_grid(np.asarray(grids[i])[:ncols], ncols) for i in keep]
  fig, axes = plt.subplots(len(rows), 1, figsize=(ncols * 0.55, len(rows) * 0.62 + 0.2))
  for ax, row, i in zip(np.atleast_1d(axes), rows, keep):
    ax.imshow(row.squeeze(-1) if row.shape[-1] == 1 else row, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(-0.01, 0.5, f"{steps[i]}", transform=ax.transAxes, ha="right", va="center", fontsize=7)
  fig.suptitle("fixed noise, by training step", fontsize=8)
  # A fixed left margin for the step labels (tight_layout ignores text outside axes).
  fig.subplots_adjust(left=0.09, right=0.99, bottom=0.01, top=0.95, hspace=0.08)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def save_gif(path: str, frames, duration_ms: int = 400) -> str:
  """Frames (uint8 [H, W, C]) as a looping animated GIF; the last frame is held longer."""

  frames = [to_uint8(f) for f in frames]
  images = [Image.fromarray(f.squeeze(-1) if f.shape[-1] == 1 else f) for f in frames]
  durations = [duration_ms] * (len(images) - 1) + [duration_ms * 4]
  images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
  return path


def class_rows(path: str, rows, class_names: list[str]) -> str:
  """One row of samples per class (a conditional generator's class-by-class grid)."""
  rows = [to_uint8(r) for r in rows]
  ncols = max(len(r) for r in rows)
  fig, axes = plt.subplots(len(rows), 1, figsize=(ncols * 0.6 + 1.2, len(rows) * 0.65 + 0.2))
  for ax, row, name in zip(np.atleast_1d(axes), rows, class_names):
    mosaic = image_grid(row, ncols) if len(row) else np.full((30, 30, 1), 255, np.uint8)
    ax.imshow(
      mosaic.squeeze(-1) if mosaic.shape[-1] == 1 else mosaic, cmap="gray", vmin=0, vmax=255
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(name, rotation=0, va="center", labelpad=28, fontsize=7)
  fig.tight_layout(pad=0.3)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def plot_gan_losses(path: str, records: list[dict]) -> str:
  """Both players' losses, and D's mean output on real and fake images, against steps."""
  panels = (
    (("train/d_loss", "discriminator"), ("train/g_loss", "generator")),
    (("train/d_real", "D(x), real"), ("train/d_fake", "D(G(z)), fake")),
  )
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for ax, panel, title in zip(axes, panels, ("losses", "discriminator outputs")):
    _plot_series(ax, records, [(key, label, "-") for key, label in panel], title)
  return _save_figure(fig, path)


def plot_class_histogram(
  path: str, class_names: list[str], fractions: dict, title: str = ""
) -> str:
  """Side-by-side bars of class fractions (e.g. generated vs real, as predicted by a classifier)."""
  n, m = len(class_names), len(fractions)
  fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * n + 1), 3.4))
  width = 0.8 / max(m, 1)
  for i, (label, values) in enumerate(fractions.items()):
    ax.bar(np.arange(n) + (i - (m - 1) / 2) * width, values, width, label=label)
  ax.axhline(1.0 / n, color="gray", lw=0.8, ls="--")
  ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=7)
  ax.set_ylabel("fraction")
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


# -- attacks and backbones ----------------------------------------------------------------------
def plot_robust_accuracy(
  path: str,
  eps_list,
  curves: dict[str, list[float]],
  title: str,
  tick_labels: list[str],
  norm: str = "linf",
) -> str:
  """Accuracy vs eps of the attack's ``norm`` ('linf' or 'l2'; x255 on a symlog axis) for each
  named curve."""
  levels = [e * 255 for e in eps_list]
  fig, ax = plt.subplots(figsize=(6.0, 3.8))
  styles = ["o-", "s-", "^--", "v--", "d:", "x:"]
  for (label, values), style in zip(curves.items(), styles):
    ax.plot(levels, values, style, label=label, markersize=4)
  ax.set_xscale("symlog", linthresh=1)
  ax.set_xticks(levels, tick_labels, fontsize=7)
  ax.set_xlabel(f"eps ({'L2' if norm == 'l2' else 'L-inf'}, pixel units)")
  ax.set_ylabel("accuracy")
  ax.set_ylim(-0.02, 1.02)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def channel_grid(fmap, max_channels: int = 64) -> np.ndarray:
  """``[H, W, C]`` -> ``[rows*H, cols*W]`` mosaic of the first channels, each scaled to [0, 1]."""
  c = min(fmap.shape[-1], max_channels)
  fmap = np.asarray(fmap)[..., :c].astype(np.float32)
  lo = fmap.min(axis=(0, 1), keepdims=True)
  hi = fmap.max(axis=(0, 1), keepdims=True)
  fmap = (fmap - lo) / np.maximum(hi - lo, 1e-8)
  cols = int(np.ceil(np.sqrt(c)))
  rows = int(np.ceil(c / cols))
  h, w = fmap.shape[:2]
  pad = np.zeros((h, w, rows * cols - c), np.float32)
  tiles = np.concatenate([fmap, pad], axis=-1).reshape(h, w, rows, cols)  # [H, W, r, c]
  return tiles.transpose(2, 0, 3, 1).reshape(rows * h, cols * w)  # [r*H, c*W]


def plot_channel_grid(path: str, grid: np.ndarray, title: str) -> str:
  """A :func:`channel_grid` mosaic in the viridis colour map, 8 inches wide."""
  fig, ax = plt.subplots(figsize=(8, 8 * grid.shape[0] / grid.shape[1]))
  ax.imshow(grid, cmap="viridis")
  ax.set_axis_off()
  ax.set_title(title)
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path
