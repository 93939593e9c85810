"""vision: a JAX/Flax functional research codebase for computer vision.

Importing the package changes nothing outside it. The XLA:CPU setting the
project relies on is applied by the entry points
(:func:`vision.ops.kernels.apply_xla_cpu_defaults`).
"""

__version__ = "0.1.0"
