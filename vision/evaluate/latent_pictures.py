"""Pictures of a latent-variable model's code space: prior samples, interpolations, and for a
2-D latent the scatter of test codes and the decoded grid."""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import numpy as np

from vision import viz
from vision.evaluate.batched import batched_apply


def batched_decoder(model, variables, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
  """``z [N, latent] -> probabilities [N, H, W, C]`` (numpy in, numpy out) from a model with a
  ``decode`` method returning logits, in batches of ``batch_size``."""
  apply = jax.jit(lambda v, z: jax.nn.sigmoid(model.apply(v, z, method="decode")))
  return lambda z: batched_apply(
    lambda b: {"x": apply(variables, b["z"])}, {"z": np.asarray(z)}, batch_size
  )["x"]


def latent_pictures(
  workdir,
  writer,
  step,
  *,
  decode,
  codes,
  labels,
  class_names,
  test_images,
  prior_samples=None,
  title="",
  grid_size=20,
):
  """Samples from the prior, interpolations, and for a 2-D latent the scatter and the grid.

  ``decode(z) -> probabilities [N, H, W, C]`` (numpy in, numpy out); ``codes``
  are the test encodings (posterior means) in test order. Returns the paths
  written; the same pictures go to ``writer`` at ``step``.
  """
  paths = {}
  rng = np.random.default_rng(0)
  latent = codes.shape[1]
  samples = decode(rng.standard_normal((64, latent)).astype(np.float32))
  paths["samples"] = viz.save_grid(os.path.join(workdir, "samples.png"), samples, ncols=16)
  # Interpolation between pairs of test images, through the latent space.
  pairs = rng.choice(len(codes), size=(6, 2), replace=False)
  alphas = np.linspace(0.0, 1.0, 10, dtype=np.float32)[None, :, None]
  path_codes = (1 - alphas) * codes[pairs[:, 0]][:, None] + alphas * codes[pairs[:, 1]][:, None]
  interp = decode(path_codes.reshape(-1, latent))  # [6 * 10, H, W, C]
  interp = interp.reshape(6, 10, *interp.shape[1:])
  rows = np.concatenate(
    [test_images[pairs[:, 0]][:, None], interp, test_images[pairs[:, 1]][:, None]], axis=1
  )  # [6, 12, H, W, C]
  paths["interpolation"] = viz.save_grid(
    os.path.join(workdir, "interpolation.png"), rows.reshape(-1, *rows.shape[2:]), ncols=12
  )
  images = {
    "test/samples": viz.image_grid(samples, ncols=16),
    "test/interpolation": viz.image_grid(rows.reshape(-1, *rows.shape[2:]), ncols=12),
  }
  if latent >= 2 and (latent == 2 or prior_samples is not None):
    # For a higher-dimensional AAE the first two coordinates, against the prior's marginal.
    paths["latent_scatter"] = viz.plot_latent_scatter(
      os.path.join(workdir, "latent_scatter.png"),
      codes,
      labels,
      class_names,
      prior=prior_samples,
      title=title,
    )
  if latent == 2:
    values = viz.gaussian_quantile_grid(grid_size).astype(np.float32)
    # Row-major, top row = largest z[1], so the picture reads like the scatter plot.
    zx, zy = np.meshgrid(values, values[::-1])
    grid = decode(np.stack([zx.ravel(), zy.ravel()], -1))
    paths["latent_grid"] = viz.plot_latent_grid(
      os.path.join(workdir, "latent_grid.png"),
      grid,
      values,
      title=f"{title}: decoded over N(0, I) quantiles",
    )
    images["test/latent_grid"] = viz.image_grid(grid, ncols=grid_size, pad=0)
  writer.write_images(step, images)
  return paths
