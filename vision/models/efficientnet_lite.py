"""EfficientNet-Lite0..4 (Tan & Le 2019, the mobile/edge "Lite" variants).

Lite removes squeeze-excite, uses ReLU6 instead of swish, and keeps the stem
(32) and head (1280) fixed when scaling. The pretrained weights come from
TensorFlow, so the network uses TF "SAME" padding (asymmetric for stride 2),
BN epsilon 1e-3 and input ``(x*255 - 127) / 128``. The architecture is the
inverted-residual network of ``vision.models.mobilenet`` with these settings.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp

from vision.models.mobilenet import InvertedResidualNet, make_divisible

Dtype = Any

# (expand_ratio, kernel, stride, out_channels, repeats) per stage of EfficientNet-B0.
EFFICIENTNET_B0_STAGES = (
  (1, 3, 1, 16, 1),
  (6, 3, 2, 24, 2),
  (6, 5, 2, 40, 2),
  (6, 3, 2, 80, 3),
  (6, 5, 1, 112, 3),
  (6, 5, 2, 192, 4),
  (6, 3, 1, 320, 1),
)

# name: (width multiplier, depth multiplier, input resolution, dropout of the original)
LITE_PARAMS = {
  "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
  "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
  "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
  "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
  "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}


def lite_stages(width: float, depth: float, stages=EFFICIENTNET_B0_STAGES):
  """Scales the B0 table the Lite way: the first and last stages keep their repeats."""
  scaled = []
  for i, (e, k, s, c, r) in enumerate(stages):
    repeats = r if i in (0, len(stages) - 1) else int(math.ceil(depth * r))
    scaled.append((e, k, s, make_divisible(c * width), repeats))
  return tuple(scaled)


class EfficientNetLite(InvertedResidualNet):
  """EfficientNet-Lite with TensorFlow conventions (TF SAME padding, eps 1e-3, 'lite' input)."""

  stages: Any = EFFICIENTNET_B0_STAGES
  preprocess: str = "lite"
  padding: str = "TF_SAME"
  # PyTorch momentum 0.01 -> Flax 0.99.
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3


def build_efficientnet_lite(
  name: str = "efficientnet_lite0",
  *,
  num_classes: int | None = 1000,
  dtype: Dtype = jnp.float32,
  width: float | None = None,
  depth: float | None = None,
  **kwargs,
) -> EfficientNetLite:
  """EfficientNet-Lite ``name`` (lite0..lite4); ``width``/``depth`` override for tiny variants."""
  w, d, _, _ = LITE_PARAMS[name]
  w = w if width is None else width
  d = d if depth is None else depth
  return EfficientNetLite(num_classes=num_classes, stages=lite_stages(w, d), dtype=dtype, **kwargs)
