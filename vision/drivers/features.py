"""Draws the feature maps of one layer of a pretrained backbone (``scripts/features.py``).

Each tile is one channel, min-max normalized on its own
(:func:`vision.viz.channel_grid`). ``layer='list'`` prints the layer names.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from vision import validate, viz
from vision.drivers import inputs
from vision.errors import InputError
from vision.models.backbones import feature_names
from vision.ops import kernels


def run(
  image: str,
  layer: str,
  model: str = "efficientnet_lite0",
  weights: str | None = None,
  out: str | None = None,
  max_channels: int = 64,
  kernel_choice: str = "auto",
) -> str | None:
  """Writes the PNG (default ``IMAGE_MODEL_LAYER.png``) and prints its path; returns it."""
  kernels.use(kernel_choice)
  # Before the model loads: a typo fails at once.
  if max_channels < 1:
    raise InputError(
      f"--max-channels {max_channels}: give a positive number of channels, e.g. --max-channels 64."
    )
  if out is not None:
    folder = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(out) or not os.path.isdir(folder):
      problem = "is a folder" if os.path.isdir(out) else f"{folder} is not a folder"
      raise InputError(f"--out {out}: {problem}; give a PNG file path in an existing folder.")
  inputs.check_image_file(image)
  validate.check_backbone(model, weights)
  network, variables, size = inputs.load_backbone(model, weights)
  picture = inputs.read_image(image, size)
  names = feature_names(network, size)  # abstract evaluation: cheap, before compiling
  if layer == "list":
    print(", ".join(names))
    return None
  if layer not in names:
    raise InputError(f"no layer {layer!r} in {model}; layers: {', '.join(names)}")
  _, features = jax.jit(network.apply)(variables, picture[None])
  fmap = np.asarray(features[layer][0])
  if fmap.ndim != 3:
    raise InputError(f"{layer} is not a spatial feature map (shape {fmap.shape})")
  out = out or f"{image.rsplit('.', 1)[0]}_{model}_{layer}.png"
  title = (
    f"{model} {layer}: {min(fmap.shape[-1], max_channels)} of "
    f"{fmap.shape[-1]} channels, {fmap.shape[0]}x{fmap.shape[1]}"
  )
  viz.plot_channel_grid(out, viz.channel_grid(fmap, max_channels), title)
  print(out)
  return out
