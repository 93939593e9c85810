"""MobileNetV2 and the inverted-residual network shared with EfficientNet-Lite.

Both families are stacks of inverted residual blocks (1x1 expand, depthwise
kxk, 1x1 linear projection, ReLU6, residual when shape allows). They differ
only in configuration: block table, padding convention (PyTorch symmetric vs
TensorFlow SAME), batch-norm constants and input preprocessing. So one module,
``InvertedResidualNet``, implements both; ``MobileNetV2`` and
``vision.models.efficientnet_lite.EfficientNetLite`` only change defaults.

Parameter names are pinned (``stem_conv``, ``block_{i}/expand_conv`` ...,
``head_conv``, ``head``) because the converters in ``vision.weights`` map
torchvision and Keras checkpoints onto them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vision.models.layers import (
  DepthwiseConv,
  Dropout,
  backbone_conv,
  batch_norm,
  preprocess_images,
  relu6,
)

Dtype = Any

# (expand_ratio, kernel, stride, out_channels, repeats) per stage, torchvision order.
MOBILENET_V2_STAGES = (
  (1, 3, 1, 16, 1),
  (6, 3, 2, 24, 2),
  (6, 3, 2, 32, 3),
  (6, 3, 2, 64, 4),
  (6, 3, 1, 96, 3),
  (6, 3, 2, 160, 3),
  (6, 3, 1, 320, 1),
)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
  """Rounds channels to a multiple of ``divisor``, losing at most 10% (TF/torchvision rule)."""
  min_value = min_value or divisor
  new = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if new < 0.9 * value:
    new += divisor
  return new


class InvertedResidual(nn.Module):
  """MobileNetV2 / EfficientNet-Lite block (no squeeze-excite)."""

  features: int
  expand_ratio: int
  kernel_size: int
  strides: int
  padding: str = "SYMMETRIC"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    bn = lambda name: batch_norm(  # noqa: E731
      train, momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype, name=name
    )
    in_features = x.shape[-1]
    y = x
    if self.expand_ratio != 1:
      hidden = in_features * self.expand_ratio
      y = backbone_conv(hidden, 1, padding="VALID", dtype=self.dtype, name="expand_conv")(y)
      y = relu6(bn("expand_bn")(y))
    y = DepthwiseConv(
      self.kernel_size,
      self.strides,
      padding=self.padding,
      dtype=self.dtype,
      name="depthwise_conv",
    )(y)
    y = relu6(bn("depthwise_bn")(y))
    y = backbone_conv(self.features, 1, padding="VALID", dtype=self.dtype, name="project_conv")(y)
    y = bn("project_bn")(y)
    if self.strides == 1 and in_features == self.features:
      y = y + x
    return y


class InvertedResidualNet(nn.Module):
  """Stem conv -> inverted residual stages -> 1x1 head conv -> pool -> optional classifier.

  Attributes:
    num_classes: classifier size; None builds a feature extractor whose
      logits are the pooled features (``pre_logits``). New heads are
      zero-initialized (fine-tuning convention).
    stages: ``(expand_ratio, kernel, stride, out_channels, repeats)`` per stage,
      already scaled (see ``block_args``).
    stem_features / head_features: channels of the stem and head convs.
    preprocess: input convention of the weights (see ``preprocess_images``).
    padding: ``'SYMMETRIC'`` (PyTorch) or ``'TF_SAME'`` (TensorFlow/Keras).
    bn_momentum: Flax momentum (1 - PyTorch momentum).
    dropout_rate: dropout before the classifier (needs a ``'dropout'`` rng when training).
    dtype: compute dtype; parameters stay float32.
  """

  num_classes: int | None = 1000
  stages: Sequence[tuple[int, int, int, int, int]] = MOBILENET_V2_STAGES
  stem_features: int = 32
  head_features: int = 1280
  preprocess: str = "torch"
  padding: str = "SYMMETRIC"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  def stage_layout(self) -> list[tuple[str, list[str]]]:
    """Ordered ``(stage_name, [top-level param names])``, stem first, head last."""
    layout = [("stem", ["stem_conv", "stem_bn"])]
    index = 0
    for s, (*_, repeats) in enumerate(self.stages):
      layout.append((f"stage{s + 1}", [f"block_{index + r}" for r in range(repeats)]))
      index += repeats
    layout.append(("head_conv", ["head_conv", "head_bn"]))
    if self.num_classes is not None:
      layout.append(("head", ["head"]))
    return layout

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    features = {}
    bn = lambda name: batch_norm(  # noqa: E731
      train, momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype, name=name
    )
    x = preprocess_images(images, self.preprocess, self.dtype)  # [B, H, W, 3]
    x = backbone_conv(
      self.stem_features, 3, 2, padding=self.padding, dtype=self.dtype, name="stem_conv"
    )(x)
    x = relu6(bn("stem_bn")(x))
    features["stem"] = x
    index = 0
    for s, (expand, kernel, stride, out, repeats) in enumerate(self.stages):
      for r in range(repeats):
        x = InvertedResidual(
          out,
          expand,
          kernel,
          stride if r == 0 else 1,
          padding=self.padding,
          bn_momentum=self.bn_momentum,
          bn_epsilon=self.bn_epsilon,
          dtype=self.dtype,
          name=f"block_{index}",
        )(x, train=train)
        features[f"block_{index}"] = x
        index += 1
      features[f"stage{s + 1}"] = x
    x = backbone_conv(self.head_features, 1, padding="VALID", dtype=self.dtype, name="head_conv")(x)
    x = relu6(bn("head_bn")(x))
    features["head_conv"] = x
    x = x.mean(axis=(1, 2))  # [B, C]
    features["pre_logits"] = x
    if self.num_classes is None:
      return x.astype(jnp.float32), features
    if self.dropout_rate > 0:
      x = Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = nn.Dense(
      self.num_classes, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="head"
    )(x)
    return logits.astype(jnp.float32), features


class MobileNetV2(InvertedResidualNet):
  """MobileNetV2 (Sandler et al. 2018); torchvision conventions by default.

  For Keras weights use ``padding='TF_SAME'``, ``preprocess='tf'``,
  ``bn_epsilon=1e-3`` (``mobilenet_v2(weights_format='keras')`` does this).
  """


def mobilenet_v2_stages(width_multiplier: float = 1.0, depth_multiplier: float = 1.0):
  """MobileNetV2 stage table scaled like torchvision (channels rounded to multiples of 8)."""
  return tuple(
    (e, k, s, make_divisible(c * width_multiplier), max(1, math.ceil(r * depth_multiplier)))
    for e, k, s, c, r in MOBILENET_V2_STAGES
  )


def build_mobilenet_v2(
  *,
  num_classes: int | None = 1000,
  weights_format: str = "torch",
  width_multiplier: float = 1.0,
  depth_multiplier: float = 1.0,
  dtype: Dtype = jnp.float32,
  **kwargs,
) -> MobileNetV2:
  """MobileNetV2 configured for ``weights_format`` ``'torch'`` (torchvision) or ``'keras'``."""
  if weights_format == "torch":
    conv = dict(preprocess="torch", padding="SYMMETRIC", bn_epsilon=1e-5, bn_momentum=0.9)
  elif weights_format == "keras":
    # Keras pads stride-2 depthwise convs with ZeroPadding2D(correct_pad) and
    # uses 'same' elsewhere: both equal TF SAME padding.
    conv = dict(preprocess="tf", padding="TF_SAME", bn_epsilon=1e-3, bn_momentum=0.999)
  else:
    raise ValueError(f"unknown weights_format {weights_format!r} for MobileNetV2")
  conv.update(kwargs)
  return MobileNetV2(
    num_classes=num_classes,
    stages=mobilenet_v2_stages(width_multiplier, depth_multiplier),
    stem_features=make_divisible(32 * width_multiplier),
    head_features=make_divisible(1280 * max(1.0, width_multiplier)),
    dtype=dtype,
    **conv,
  )
