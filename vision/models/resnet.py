"""ResNet-18/34/50 (He et al. 2016) in the torchvision and Keras conventions.

The two sources of pretrained ResNet-50 weights differ in architecture, not
only in names: torchvision ("v1.5") strides the 3x3 conv of a bottleneck and
has no conv biases; Keras (original v1, Caffe weights) strides the first 1x1
conv and gives every conv a bias. ``stride_on_3x3`` and ``conv_bias`` select
the variant so each checkpoint runs the network it was trained as.

Names: ``stem_conv``, ``stem_bn``, ``stage{s}_block{b}`` (both 1-based) with
``conv1..3``/``bn1..3``/``proj_conv``/``proj_bn`` inside, classifier ``head``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vision.models.layers import Dropout, backbone_conv, batch_norm, preprocess_images

Dtype = Any


class BasicBlock(nn.Module):
  """Two 3x3 convs (ResNet-18/34)."""

  features: int
  strides: int = 1
  stride_on_3x3: bool = True  # unused: both convs are 3x3
  conv_bias: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    bn = lambda name: batch_norm(  # noqa: E731
      train, momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype, name=name
    )
    conv = lambda f, k, s, name: backbone_conv(  # noqa: E731
      f, k, s, padding="SYMMETRIC", use_bias=self.conv_bias, dtype=self.dtype, name=name
    )
    y = nn.relu(bn("bn1")(conv(self.features, 3, self.strides, "conv1")(x)))
    y = bn("bn2")(conv(self.features, 3, 1, "conv2")(y))
    if self.strides != 1 or x.shape[-1] != self.features:
      x = bn("proj_bn")(conv(self.features, 1, self.strides, "proj_conv")(x))
    return nn.relu(y + x)


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3, 1x1 expand (x4) bottleneck (ResNet-50)."""

  features: int
  strides: int = 1
  stride_on_3x3: bool = True
  conv_bias: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Dtype = jnp.float32
  expansion: int = 4

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    bn = lambda name: batch_norm(  # noqa: E731
      train, momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype, name=name
    )
    conv = lambda f, k, s, name: backbone_conv(  # noqa: E731
      f, k, s, padding="SYMMETRIC", use_bias=self.conv_bias, dtype=self.dtype, name=name
    )
    s1, s3 = (1, self.strides) if self.stride_on_3x3 else (self.strides, 1)
    out = self.features * self.expansion
    y = nn.relu(bn("bn1")(conv(self.features, 1, s1, "conv1")(x)))
    y = nn.relu(bn("bn2")(conv(self.features, 3, s3, "conv2")(y)))
    y = bn("bn3")(conv(out, 1, 1, "conv3")(y))
    if self.strides != 1 or x.shape[-1] != out:
      x = bn("proj_bn")(conv(out, 1, self.strides, "proj_conv")(x))
    return nn.relu(y + x)


class ResNet(nn.Module):
  """ResNet returning ``(logits, features)``; features ``stem``, ``stage1..4``, ``pre_logits``.

  Attributes:
    stage_sizes: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
    bottleneck: bottleneck blocks (ResNet-50) instead of basic blocks.
    width: channels of the first stage (64; smaller for tiny test models).
    num_classes: classifier size, None for a feature extractor (logits =
      pooled features). New heads are zero-initialized.
    preprocess: ``'torch'`` (ImageNet mean/std) or ``'caffe'`` (Keras).
    stride_on_3x3 / conv_bias: torchvision (True/False) or Keras (False/True).
    dropout_rate: dropout before the classifier (needs a ``'dropout'`` rng when training).
  """

  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  bottleneck: bool = False
  width: int = 64
  num_classes: int | None = 1000
  preprocess: str = "torch"
  stride_on_3x3: bool = True
  conv_bias: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Dtype = jnp.float32
  dropout_rate: float = 0.0

  def stage_layout(self) -> list[tuple[str, list[str]]]:
    """Ordered ``(stage_name, [top-level param names])``, stem first, head last."""
    layout = [("stem", ["stem_conv", "stem_bn"])]
    for s, n in enumerate(self.stage_sizes):
      layout.append((f"stage{s + 1}", [f"stage{s + 1}_block{b + 1}" for b in range(n)]))
    if self.num_classes is not None:
      layout.append(("head", ["head"]))
    return layout

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    features = {}
    x = preprocess_images(images, self.preprocess, self.dtype)  # [B, H, W, 3]
    x = backbone_conv(
      self.width, 7, 2, padding=3, use_bias=self.conv_bias, dtype=self.dtype, name="stem_conv"
    )(x)
    x = batch_norm(
      train, momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype, name="stem_bn"
    )(x)
    x = nn.relu(x)
    # Padding with -inf (torch) and with zeros after ReLU (Keras) give the same max.
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    features["stem"] = x
    block = Bottleneck if self.bottleneck else BasicBlock
    for s, n in enumerate(self.stage_sizes):
      for b in range(n):
        x = block(
          self.width * 2**s,
          strides=2 if (s > 0 and b == 0) else 1,
          stride_on_3x3=self.stride_on_3x3,
          conv_bias=self.conv_bias,
          bn_momentum=self.bn_momentum,
          bn_epsilon=self.bn_epsilon,
          dtype=self.dtype,
          name=f"stage{s + 1}_block{b + 1}",
        )(x, train=train)
      features[f"stage{s + 1}"] = x
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


RESNET_STAGES = {
  "resnet18": ((2, 2, 2, 2), False),
  "resnet34": ((3, 4, 6, 3), False),
  "resnet50": ((3, 4, 6, 3), True),
}


def build_resnet(
  name: str = "resnet50",
  *,
  num_classes: int | None = 1000,
  weights_format: str = "torch",
  dtype: Dtype = jnp.float32,
  **kwargs,
) -> ResNet:
  """ResNet ``name`` in the torchvision (default) or Keras (``weights_format='keras'``) variant."""
  stages, bottleneck = RESNET_STAGES[name]
  if weights_format == "torch":
    conv = dict(
      preprocess="torch", stride_on_3x3=True, conv_bias=False, bn_epsilon=1e-5, bn_momentum=0.9
    )
  elif weights_format == "keras":
    if not bottleneck:
      raise ValueError(f"Keras has no {name}; only resnet50 has Keras weights")
    conv = dict(
      preprocess="caffe", stride_on_3x3=False, conv_bias=True, bn_epsilon=1.001e-5, bn_momentum=0.99
    )
  else:
    raise ValueError(f"unknown weights_format {weights_format!r} for ResNet")
  config = dict(stage_sizes=stages, bottleneck=bottleneck, **conv) | kwargs
  return ResNet(num_classes=num_classes, dtype=dtype, **config)
