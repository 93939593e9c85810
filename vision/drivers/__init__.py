"""Drivers: the runs behind ``scripts/``, which read a config or arguments, run and write results.

One module per run; each calls :func:`vision.ops.kernels.use` first and raises
:class:`vision.errors.UserError` for input the user can fix:

* :mod:`vision.drivers.attack` - adversarial photos against an ImageNet backbone.
* :mod:`vision.drivers.robustness` - robust accuracy vs eps, transfer between classifiers.
* :mod:`vision.drivers.visualize` - class and feature visualization.
* :mod:`vision.drivers.stylize` - neural style transfer.
* :mod:`vision.drivers.classify` - top-k ImageNet classes of image files.
* :mod:`vision.drivers.features` - one layer's feature maps as a picture.
* :mod:`vision.drivers.convert_weights` - a pretrained checkpoint into the weights cache.
* :mod:`vision.drivers.benchmark` - the speed workloads.
* :mod:`vision.drivers.compare_torch` - the workloads paired with the PyTorch reference.
* :mod:`vision.drivers.sweep` - one run per point of a config's sweep, and a summary.
* :mod:`vision.drivers.inputs` - what the image drivers read (backbones, photos, classes).

Drivers sit above the library (:mod:`vision.optimize`, :mod:`vision.train`,
:mod:`vision.evaluate` ...); nothing in the library imports them.
"""
