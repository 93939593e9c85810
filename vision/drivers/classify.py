"""Classifies image files with a pretrained ImageNet backbone (``scripts/classify.py``).

Images are resized as a whole to the model's input size (``resize='crop'``:
shorter side to size/0.875 and a centre crop, the ImageNet protocol).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import jax
import numpy as np

from vision import validate
from vision.drivers import inputs
from vision.errors import InputError
from vision.ops import kernels
from vision.weights.imagenet import top_k


def classify(
  images: Sequence[str],
  model: str = "efficientnet_lite0",
  weights: str | None = None,
  size: int | None = None,
  resize: str = "direct",
  top: int = 5,
) -> list[list[dict]]:
  """The ``top`` classes ``[{'index', 'label', 'prob'}]`` of each image file in ``images``."""
  # Before the model loads: a typo fails at once.
  if top < 1:
    raise InputError(f"--top {top}: give a positive number of classes, e.g. --top 5.")
  if size is not None and size < 16:
    raise InputError(f"--size {size}: give an input size of at least 16, e.g. --size 224.")
  for path in images:
    inputs.check_image_file(path)
  validate.check_backbone(model, weights)
  network, variables, input_size = inputs.load_backbone(model, weights)
  size = size or input_size
  batch = np.stack([inputs.read_image(path, size, resize) for path in images])  # [B, H, W, 3]
  logits, _ = jax.jit(network.apply)(variables, batch)
  probs = np.asarray(jax.nn.softmax(logits, axis=-1))
  return [top_k(p, top) for p in probs]


def run(images: Sequence[str], *, as_json: bool = False, kernel_choice: str = "auto", **options):
  """Prints :func:`classify`'s answer per image: a JSON list a line, or a ranked table."""
  kernels.use(kernel_choice)
  for path, result in zip(images, classify(images, **options)):
    if as_json:
      print(json.dumps(result))
    else:
      print(path)
      for rank, r in enumerate(result, 1):
        print(f"  {rank}. {r['label']:<30s} {r['prob']:.4f}  (class {r['index']})")
