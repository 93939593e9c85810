"""vision: a JAX/Flax functional research codebase for computer vision.

Importing the package sets one XLA:CPU default before JAX starts its backend
(:func:`xla_cpu_defaults`): convolutions go to XLA's own convolution kernels
instead of the newer YNNPACK fusions, which ran the project's GAN and VAE steps
1.5-1.9x slower on the project's CPUs (docs/performance.md). Matmuls keep
YNNPACK. The flag only concerns the CPU backend; a flag of the same name already
in ``XLA_FLAGS`` wins, and ``VISION_XLA_DEFAULTS=0`` turns the default off.
"""

import os

__version__ = "0.1.0"

# Measured on the project's 2-core x86-64 CPU with jaxlib 0.10.2 (docs/performance.md).
XLA_CPU_DEFAULT_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)


def xla_cpu_defaults(environ=os.environ) -> str:
  """Adds the project's XLA:CPU defaults to ``XLA_FLAGS`` (unless set there); returns the flags.

  Takes effect only if JAX's backend has not started yet: importing ``vision``
  first (as every script does) is enough.
  """
  flags = environ.get("XLA_FLAGS", "")
  if environ.get("VISION_XLA_DEFAULTS", "1") == "0":
    return flags
  for flag in XLA_CPU_DEFAULT_FLAGS:
    if flag.split("=")[0] not in flags:
      flags = f"{flags} {flag}".strip()
  environ["XLA_FLAGS"] = flags
  return flags


xla_cpu_defaults()
