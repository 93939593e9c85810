"""Small PyTorch re-implementations of torchvision's VGG, ResNet and MobileNetV2.

torchvision does not import in every test environment, so the converters'
torchvision-naming path is exercised against these modules instead: they
follow torchvision's module structure exactly (``features.N``,
``classifier.N``, ``layerX.Y.downsample.0``, ``features.N.conv.M.K`` ...), so
their ``state_dict()`` keys are torchvision's, and their forward passes are
torchvision's computation (ResNet v1.5 stride on the 3x3 conv, adaptive
7x7 pooling and CHW flatten in VGG, symmetric padding, BN eps 1e-5). Widths
are parameters so tests can run tiny models.
"""

import torch
import torch.nn as nn


class VGG(nn.Module):
  def __init__(self, blocks=(2, 2, 3, 3, 3), width=64, hidden=4096, num_classes=1000):
    super().__init__()
    layers, cin = [], 3
    for b, n in enumerate(blocks):
      cout = width * (1, 2, 4, 8, 8)[b]
      for _ in range(n):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
        cin = cout
      layers.append(nn.MaxPool2d(2, 2))
    self.features = nn.Sequential(*layers)
    self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    self.classifier = nn.Sequential(
      nn.Linear(cin * 49, hidden),
      nn.ReLU(True),
      nn.Dropout(),
      nn.Linear(hidden, hidden),
      nn.ReLU(True),
      nn.Dropout(),
      nn.Linear(hidden, num_classes),
    )

  def forward(self, x):
    x = self.avgpool(self.features(x))
    return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, cin, width, stride=1, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(width)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = downsample

  def forward(self, x):
    y = self.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return self.relu(y + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin, width, stride=1, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)  # v1.5: stride here
    self.bn2 = nn.BatchNorm2d(width)
    self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(width * 4)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = downsample

  def forward(self, x):
    y = self.relu(self.bn1(self.conv1(x)))
    y = self.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    return self.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
  def __init__(self, block=BasicBlock, layers=(2, 2, 2, 2), width=64, num_classes=1000):
    super().__init__()
    self.inplanes = width
    self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.relu = nn.ReLU(inplace=True)
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    for i, n in enumerate(layers):
      setattr(self, f"layer{i + 1}", self._make_layer(block, width * 2**i, n, 1 if i == 0 else 2))
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    self.fc = nn.Linear(self.inplanes, num_classes)

  def _make_layer(self, block, planes, blocks, stride):
    downsample = None
    if stride != 1 or self.inplanes != planes * block.expansion:
      downsample = nn.Sequential(
        nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
        nn.BatchNorm2d(planes * block.expansion),
      )
    layers = [block(self.inplanes, planes, stride, downsample)]
    self.inplanes = planes * block.expansion
    layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)

  def forward(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(torch.flatten(self.avgpool(x), 1))


def conv_bn_act(cin, cout, k=3, stride=1, groups=1):
  """torchvision's Conv2dNormActivation: Sequential(conv, BN, ReLU6)."""
  return nn.Sequential(
    nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
    nn.BatchNorm2d(cout),
    nn.ReLU6(inplace=True),
  )


class InvertedResidual(nn.Module):
  def __init__(self, cin, cout, stride, expand_ratio):
    super().__init__()
    hidden = int(round(cin * expand_ratio))
    self.use_res_connect = stride == 1 and cin == cout
    layers = [] if expand_ratio == 1 else [conv_bn_act(cin, hidden, 1)]
    layers += [
      conv_bn_act(hidden, hidden, 3, stride, groups=hidden),
      nn.Conv2d(hidden, cout, 1, bias=False),
      nn.BatchNorm2d(cout),
    ]
    self.conv = nn.Sequential(*layers)

  def forward(self, x):
    return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
  """``stages`` is the already-scaled (t, kernel, stride, c, n) table of vision.models.mobilenet."""

  def __init__(self, stages, stem=32, last=1280, num_classes=1000):
    super().__init__()
    features, cin = [conv_bn_act(3, stem, 3, 2)], stem
    for t, _, s, c, n in stages:
      for i in range(n):
        features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
        cin = c
    features.append(conv_bn_act(cin, last, 1))
    self.features = nn.Sequential(*features)
    self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

  def forward(self, x):
    x = self.features(x)
    return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def randomize_batch_norm(module: nn.Module, seed: int = 0) -> None:
  """Non-trivial BN statistics and affine parameters, so conversion errors show up."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, nn.BatchNorm2d):
        c = m.num_features
        m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
        m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        m.weight.copy_(torch.rand(c, generator=g) + 0.5)
        m.bias.copy_(torch.randn(c, generator=g) * 0.2)
