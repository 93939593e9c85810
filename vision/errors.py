"""The project's user errors: bad input that a script reports as one line, without a traceback.

Every layer raises a subclass of :class:`UserError` for input the user can fix
(a config value, a missing file, a workdir that holds another run); the entry
points catch ``UserError`` alone and print ``error: <message>`` with exit
status 2. A message names the problem and the fix. This module imports nothing
from the project, so every layer may import it.
"""

from __future__ import annotations


class UserError(Exception):
  """Bad input from the user; printed as one line without a traceback."""


class ConfigError(UserError, ValueError):
  """A config file, field or override is wrong."""


class DatasetError(UserError, ValueError):
  """A data set or split cannot be found or read."""


class WeightsError(UserError, ValueError):
  """Pretrained weights are missing or do not fit the model."""


class CheckpointMismatchError(UserError, ValueError):
  """A checkpoint does not fit the state the config builds."""


class WorkdirMismatchError(UserError, ValueError):
  """The workdir holds a run of a different config."""


class InputError(UserError, ValueError):
  """A command-line argument or a named input (an image file, a workload) is missing or wrong."""


class NonFiniteLossError(UserError, FloatingPointError):
  """The loss or the parameters became NaN or infinite; the last good checkpoint is kept."""


class CheckpointError(UserError, OSError):
  """No checkpoint of the workdir can be read: its files are damaged or incomplete."""
