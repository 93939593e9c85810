"""Saves the feature maps of one layer of a pretrained backbone as a PNG grid.

    python scripts/features.py chelsea.png --model vgg16 --layer block4_conv2 --out maps.png
    python scripts/features.py chelsea.png --model efficientnet_lite0 --layer stage3

Each tile is one channel, min-max normalized on its own. ``--layer list``
prints the layer names of the model. The run is :mod:`vision.drivers.features`.
"""

import sys

from vision import cli
from vision.drivers import features


def main(argv=None):
  parser = cli.argument_parser(__doc__)
  parser.add_argument("image", metavar="IMAGE")
  parser.add_argument("--model", default="efficientnet_lite0")
  parser.add_argument("--layer", required=True, help="feature name, or 'list'")
  parser.add_argument("--weights", default=None)
  parser.add_argument("--out", default=None, help="PNG path (default: IMAGE_MODEL_LAYER.png)")
  parser.add_argument("--max-channels", type=int, default=64)
  cli.add_kernels_flag(parser)
  features.run(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
