"""A small CNN trained from scratch: the baseline transfer learning is compared against.

Blocks of (Conv3x3 -> BatchNorm -> ReLU) x ``convs_per_block``, then 2x2 max
pooling; then dropout, a hidden dense layer, dropout and the classifier. The
classic dropout ablation varies ``dropout``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vision.errors import ConfigError
from vision.models.layers import Dropout, max_pool_2x2
from vision.models.registry import register

INITIALIZERS = {
  "he_normal": nn.initializers.he_normal(),
  "glorot_uniform": nn.initializers.glorot_uniform(),
  "lecun_normal": nn.initializers.lecun_normal(),
  "normal": nn.initializers.normal(0.02),
}


class CNN(nn.Module):
  num_classes: int = 10
  widths: Sequence[int] = (32, 64)
  convs_per_block: int = 2
  hidden: int = 256
  dropout: float = 0.3
  batch_norm: bool = True
  initializer: str = "he_normal"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    if self.initializer not in INITIALIZERS:
      raise ValueError(
        f"unknown initializer {self.initializer!r}; choose one of {', '.join(INITIALIZERS)}."
      )
    kernel_init = INITIALIZERS[self.initializer]
    h, w = images.shape[1:3]
    if min(h, w) >> len(self.widths) == 0:
      most = max(1, min(h, w).bit_length() - 1)
      raise ConfigError(
        f"--config.model.widths={tuple(self.widths)}: {len(self.widths)} blocks of 2x2 pooling "
        f"shrink {h}x{w} images to nothing; use at most {most} widths for this image size."
      )
    features = {}
    x = images.astype(self.dtype)
    if jnp.issubdtype(images.dtype, jnp.integer):
      x = x / 255.0
    x = x * 2.0 - 1.0  # [0, 1] -> [-1, 1], centred for the first layer
    for b, width in enumerate(self.widths):
      for c in range(self.convs_per_block):
        x = nn.Conv(
          width,
          (3, 3),
          use_bias=not self.batch_norm,
          kernel_init=kernel_init,
          dtype=self.dtype,
          name=f"block{b + 1}_conv{c + 1}",
        )(x)
        if self.batch_norm:
          x = nn.BatchNorm(
            use_running_average=not train,
            momentum=0.9,
            dtype=self.dtype,
            name=f"block{b + 1}_bn{c + 1}",
          )(x)
        x = nn.relu(x)
        features[f"block{b + 1}_conv{c + 1}"] = x
      x = max_pool_2x2(x)
      features[f"block{b + 1}"] = x
    x = x.reshape(x.shape[0], -1)  # [B, H * W * C]
    x = Dropout(self.dropout, deterministic=not train)(x)
    x = nn.relu(nn.Dense(self.hidden, kernel_init=kernel_init, dtype=self.dtype, name="hidden")(x))
    features["pre_logits"] = x
    x = Dropout(self.dropout, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features


@register("cnn")
def cnn(num_classes: int = 10, **kwargs) -> CNN:
  return CNN(num_classes=num_classes, **kwargs)
