"""Saves the feature maps of one layer of a pretrained backbone as a PNG grid.

    python scripts/features.py chelsea.png --model vgg16 --layer block4_conv2 --out maps.png
    python scripts/features.py chelsea.png --model efficientnet_lite0 --layer stage3

Each tile is one channel, min-max normalized on its own. ``--layer list``
prints the layer names of the model.
"""

from __future__ import annotations

import argparse
import sys


def channel_grid(fmap, max_channels: int = 64):
  """``[H, W, C]`` -> ``[rows*H, cols*W]`` mosaic of the first channels, each scaled to [0, 1]."""
  import numpy as np

  c = min(fmap.shape[-1], max_channels)
  fmap = fmap[..., :c].astype(np.float32)
  lo = fmap.min(axis=(0, 1), keepdims=True)
  hi = fmap.max(axis=(0, 1), keepdims=True)
  fmap = (fmap - lo) / np.maximum(hi - lo, 1e-8)
  cols = int(np.ceil(np.sqrt(c)))
  rows = int(np.ceil(c / cols))
  h, w = fmap.shape[:2]
  pad = np.zeros((h, w, rows * cols - c), np.float32)
  tiles = np.concatenate([fmap, pad], axis=-1).reshape(h, w, rows, cols)  # [H, W, r, c]
  return tiles.transpose(2, 0, 3, 1).reshape(rows * h, cols * w)  # [r*H, c*W]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("image", metavar="IMAGE")
  parser.add_argument("--model", default="efficientnet_lite0")
  parser.add_argument("--layer", required=True, help="feature name, or 'list'")
  parser.add_argument("--weights", default=None)
  parser.add_argument("--out", default=None, help="PNG path (default: IMAGE_MODEL_LAYER.png)")
  parser.add_argument("--max-channels", type=int, default=64)
  args = parser.parse_args(argv)

  import jax
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np

  from vision.models.backbones import backbone_info, feature_names
  from vision.weights import WeightsError, load_pretrained
  from vision.weights.imagenet import load_image

  try:
    size = backbone_info(args.model).input_size
    model, variables = load_pretrained(args.model, args.weights, num_classes=1000)
    image = load_image(args.image, size)
  except (WeightsError, FileNotFoundError, ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  names = feature_names(model, size)  # abstract evaluation: cheap, before compiling
  if args.layer == "list":
    print(", ".join(names))
    return 0
  if args.layer not in names:
    print(
      f"error: no layer {args.layer!r} in {args.model}; layers: {', '.join(names)}", file=sys.stderr
    )
    return 2
  _, features = jax.jit(model.apply)(variables, image[None])
  fmap = np.asarray(features[args.layer][0])
  if fmap.ndim != 3:
    print(f"error: {args.layer} is not a spatial feature map (shape {fmap.shape})", file=sys.stderr)
    return 2
  grid = channel_grid(fmap, args.max_channels)
  out = args.out or f"{args.image.rsplit('.', 1)[0]}_{args.model}_{args.layer}.png"
  fig, ax = plt.subplots(figsize=(8, 8 * grid.shape[0] / grid.shape[1]))
  ax.imshow(grid, cmap="viridis")
  ax.set_axis_off()
  ax.set_title(
    f"{args.model} {args.layer}: {min(fmap.shape[-1], args.max_channels)} of "
    f"{fmap.shape[-1]} channels, {fmap.shape[0]}x{fmap.shape[1]}"
  )
  fig.savefig(out, dpi=100, bbox_inches="tight")
  plt.close(fig)
  print(out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
