"""VGG-16/19 (Simonyan & Zisserman 2014), the usual backbone for style transfer.

Every conv layer is named and reported under its Keras name
(``block4_conv2``), post-ReLU, so style/content losses can pick layers the
way the papers name them. The classifier follows torchvision: adaptive
average pooling to 7x7 (identity at 224x224), flatten in HWC order (the
torch converter permutes ``fc1`` from torch's CHW order), ``fc1``, ``fc2``,
``head``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vision.models.layers import Dropout, adaptive_avg_pool, backbone_conv, preprocess_images

Dtype = Any

VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


class VGG(nn.Module):
  """VGG returning ``(logits, features)``.

  Attributes:
    blocks: convs per block, (2, 2, 3, 3, 3) for VGG-16.
    width: channels of block 1 (64); blocks use width * (1, 2, 4, 8, 8).
    hidden: units of fc1/fc2 (4096).
    num_classes: classifier size; None drops fc1/fc2/head and returns the
      global-average-pooled ``block5_pool`` as logits (feature extractor).
    preprocess: ``'torch'`` (torchvision) or ``'caffe'`` (Keras).
    dropout_rate: dropout after fc1 and fc2 (torchvision trained with 0.5).
  """

  blocks: Sequence[int] = VGG_BLOCKS["vgg16"]
  width: int = 64
  hidden: int = 4096
  num_classes: int | None = 1000
  preprocess: str = "torch"
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  def conv_names(self) -> list[str]:
    return [f"block{b + 1}_conv{c + 1}" for b, n in enumerate(self.blocks) for c in range(n)]

  def stage_layout(self) -> list[tuple[str, list[str]]]:
    """Ordered ``(stage_name, [top-level param names])``: block1..5, then the classifier."""
    layout = [
      (f"block{b + 1}", [f"block{b + 1}_conv{c + 1}" for c in range(n)])
      for b, n in enumerate(self.blocks)
    ]
    if self.num_classes is not None:
      layout += [("fc1", ["fc1"]), ("fc2", ["fc2"]), ("head", ["head"])]
    return layout

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    features = {}
    x = preprocess_images(images, self.preprocess, self.dtype)  # [B, H, W, 3]
    multipliers = (1, 2, 4, 8, 8)
    for b, n in enumerate(self.blocks):
      for c in range(n):
        name = f"block{b + 1}_conv{c + 1}"
        x = backbone_conv(
          self.width * multipliers[b], 3, padding=1, use_bias=True, dtype=self.dtype, name=name
        )(x)
        x = nn.relu(x)
        features[name] = x
      x = nn.max_pool(x, (2, 2), (2, 2))
      features[f"block{b + 1}_pool"] = x
    if self.num_classes is None:
      x = x.mean(axis=(1, 2))  # [B, C]
      features["pre_logits"] = x
      return x.astype(jnp.float32), features
    x = adaptive_avg_pool(x, (7, 7))
    x = x.reshape(x.shape[0], -1)  # [B, 7 * 7 * C], HWC order
    for name in ("fc1", "fc2"):
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=name)(x))
      features[name] = x
      if self.dropout_rate > 0:
        x = Dropout(self.dropout_rate, deterministic=not train)(x)
    features["pre_logits"] = x
    logits = nn.Dense(
      self.num_classes, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="head"
    )(x)
    return logits.astype(jnp.float32), features


def build_vgg(
  name: str = "vgg16",
  *,
  num_classes: int | None = 1000,
  weights_format: str = "torch",
  dtype: Dtype = jnp.float32,
  **kwargs,
) -> VGG:
  """VGG ``name`` preprocessing for torchvision (default) or Keras (Caffe BGR) weights."""
  if weights_format not in ("torch", "keras"):
    raise ValueError(f"unknown weights_format {weights_format!r} for VGG")
  kwargs.setdefault("preprocess", "torch" if weights_format == "torch" else "caffe")
  kwargs.setdefault("blocks", VGG_BLOCKS[name])
  return VGG(num_classes=num_classes, dtype=dtype, **kwargs)
