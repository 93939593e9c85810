"""Metric writers: metrics.jsonl, TensorBoard event files (tensorboardX, no TensorFlow)."""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np


def _clean(value):
  value = float(value)
  return value if math.isfinite(value) else str(value)


def _summary_writer():
  """tensorboardX's SummaryWriter, imported without PyTorch.

  tensorboardX imports torch at import time when it is installed, only to accept
  torch tensors; this project logs floats and numpy arrays, so the import is made
  with torch hidden, which saves every run PyTorch's start-up. A torch already
  imported is left as it is.
  """
  hide = "torch" not in sys.modules
  if hide:
    sys.modules["torch"] = None  # makes `import torch` raise ImportError
  try:
    from tensorboardX import SummaryWriter
  finally:
    if hide:
      del sys.modules["torch"]
  return SummaryWriter


class MetricWriter:
  """Appends one JSON object per logged step and mirrors scalars and images to TensorBoard.

  On resume from step S, records of later steps (written after the last
  checkpoint by the interrupted run) are dropped so the log matches the state.
  An inactive writer (every process but 0 of a multi-process run) writes nothing.
  """

  def __init__(
    self, workdir: str, *, resume_step: int = 0, tensorboard: bool = True, active: bool = True
  ):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.active = active
    self._file = self._tb = None
    if not active:
      return
    kept = []
    if os.path.exists(self.path):
      with open(self.path) as f:
        for line in f:
          try:
            record = json.loads(line)
          except json.JSONDecodeError:
            continue  # a line cut off by a kill
          if record.get("step", 0) <= resume_step:
            kept.append(line if line.endswith("\n") else line + "\n")
    with open(self.path, "w") as f:
      f.writelines(kept)
    self._file = open(self.path, "a")
    self._tb = None
    if tensorboard:
      self._tb = _summary_writer()(
        os.path.join(workdir, "tensorboard"), purge_step=resume_step or None
      )

  def write_scalars(self, step: int, scalars: dict) -> None:
    if not self.active:
      return
    record = {"step": int(step), **{k: _clean(v) for k, v in scalars.items()}}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    if self._tb is not None:
      for key, value in scalars.items():
        self._tb.add_scalar(key, float(value), int(step))

  def write_images(self, step: int, images: dict) -> None:
    """``images``: name -> float [H, W, C] in [0, 1] or uint8."""
    if self._tb is None:
      return
    for key, image in images.items():
      image = np.asarray(image)
      if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
      if image.ndim == 2:
        image = image[..., None]
      self._tb.add_image(key, image, int(step), dataformats="HWC")

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
  """The records of ``workdir/metrics.jsonl`` ([] when there is none)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_json(path: str, data: dict) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(data, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)
