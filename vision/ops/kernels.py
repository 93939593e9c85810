"""The one switch between the ``portable`` and the ``cpu`` forms of the models' operations.

``config.kernels`` (every experiment config has it) is ``'auto'``, ``'portable'``
or ``'cpu'``; the environment variable ``VISION_KERNELS`` overrides it. ``'auto'``
means ``'cpu'`` on JAX's CPU backend and ``'portable'`` on every other one. The
training loop and the drivers call :func:`use` once, before anything is traced;
the operations in :mod:`vision.ops` read :func:`current` while they are traced
and take an explicit ``kernels=`` argument that wins over it (tests compare the
forms that way). Both forms compute the same function, so checkpoints and
results move between them.

The switch is read at trace time: a function jitted under one choice keeps its
compiled form, so choose once per process, before the first step is traced.

:func:`apply_xla_cpu_defaults` is the one XLA:CPU setting the project relies on
(convolutions on XLA's own kernels rather than its YNNPACK fusions, which run
the GAN and VAE steps slower, docs/performance.md). It writes ``XLA_FLAGS``, so
only the entry points (the CLI module) and ``tests/conftest.py`` call it, before
JAX starts its backend; importing a ``vision`` module changes no environment
variable.
"""

from __future__ import annotations

import os

import jax

from vision.errors import ConfigError

KERNELS = ("auto", "portable", "cpu")
ENV_VAR = "VISION_KERNELS"
XLA_CPU_DEFAULT_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)

_current: str | None = None


def backend() -> str:
  """JAX's default backend (``'cpu'``, ``'gpu'``, ``'tpu'``): what ``'auto'`` looks at, and what
  a run records next to its timings."""
  return jax.default_backend()


def resolve(name: str | None = "auto") -> str:
  """``'portable'`` or ``'cpu'`` for a config value (``$VISION_KERNELS`` wins when set)."""
  name = os.environ.get(ENV_VAR) or name or "auto"
  if name not in KERNELS:
    raise ConfigError(
      f"unknown kernels {name!r}; set --config.kernels (or {ENV_VAR}) to one of "
      f"{', '.join(KERNELS)}."
    )
  if name == "auto":
    return "cpu" if backend() == "cpu" else "portable"
  return name


def current() -> str:
  """The process-wide choice: what :func:`use` set, else ``resolve('auto')`` (resolved once)."""
  global _current
  if _current is None:
    _current = resolve("auto")
  return _current


def pick(kernels: str | None) -> str:
  """An operation's explicit ``kernels=`` argument, or :func:`current` when it is None."""
  if kernels is None:
    return current()
  if kernels not in ("portable", "cpu"):
    raise ValueError(f"kernels must be 'portable' or 'cpu' (or None), got {kernels!r}.")
  return kernels


class use:  # noqa: N801 - used like a function: kernels.use(config.kernels)
  """Sets the process-wide choice; as a context manager, restores the previous one on exit."""

  def __init__(self, name: str | None = "auto"):
    global _current
    self.previous = _current
    self.value = resolve(name)
    _current = self.value

  def __enter__(self) -> str:
    return self.value

  def __exit__(self, *exc) -> None:
    global _current
    _current = self.previous


def apply_xla_cpu_defaults(environ=os.environ) -> str:
  """Adds the project's XLA:CPU defaults to ``XLA_FLAGS`` unless a flag of the same name is set.

  ``VISION_XLA_DEFAULTS=0`` leaves ``XLA_FLAGS`` alone. Takes effect only
  before JAX starts its backend. Returns the flags.
  """
  flags = environ.get("XLA_FLAGS", "")
  if environ.get("VISION_XLA_DEFAULTS", "1") == "0":
    return flags
  for flag in XLA_CPU_DEFAULT_FLAGS:
    if flag.split("=")[0] not in flags:
      flags = f"{flags} {flag}".strip()
  environ["XLA_FLAGS"] = flags
  return flags
