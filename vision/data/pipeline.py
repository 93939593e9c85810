"""grain pipelines: seeded, resumable batches of uint8 images.

The training stream is a grain ``MapDataset`` over example *indices*: shuffled
with a seed (a new order every epoch), batched, and mapped to a read of those
records. Batch ``k`` is a pure function of ``(seed, k)``, so a resumed run
starts at the restored step and sees exactly the batches an uninterrupted run
would have seen. Images stay ``uint8`` until they are on the device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import grain
import jax
import numpy as np

from vision.data.sources import Split
from vision.errors import ConfigError, DatasetError


def _process_rows(global_batch: int) -> slice:
  """The rows of a global batch that this host loads (all of them on one host)."""
  count, index = jax.process_count(), jax.process_index()
  local = global_batch // count
  return slice(index * local, (index + 1) * local)


def _check_not_empty(split: Split) -> None:
  if not len(split):
    raise DatasetError(
      f"{split.name}:{split.split} has no examples; check --config.data.class_filter (the "
      "classes kept) and the split's range."
    )


def train_batches(
  split: Split,
  *,
  batch_size: int,
  num_steps: int,
  seed: int,
  start_step: int = 0,
  num_threads: int = 2,
  prefetch: int = 4,
) -> Iterator[dict[str, np.ndarray]]:
  """Yields batches ``start_step .. num_steps - 1`` of an endless seeded shuffle.

  Each yielded dict holds this host's rows: ``image`` uint8 [B, H, W, C] and
  ``label`` int32 [B].
  """
  _check_not_empty(split)
  if batch_size > len(split):
    raise ConfigError(
      f"--config.batch_size={batch_size} exceeds the {len(split)} training examples of "
      f"{split.name}:{split.split}; use --config.batch_size={max(1, len(split))} or less, "
      "or a larger --config.data.train_split."
    )
  steps_per_epoch = len(split) // batch_size
  epochs = math.ceil(num_steps / steps_per_epoch) + 1
  rows = _process_rows(batch_size)
  read = split.read
  dataset = (
    grain.MapDataset.range(len(split))
    .seed(seed)
    .shuffle()
    .repeat(epochs)
    .batch(batch_size, drop_remainder=True)
    .map(lambda indices: read(np.asarray(indices)[rows]))
  )
  dataset = dataset.slice(slice(start_step, num_steps))
  options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  return iter(dataset.to_iter_dataset(options))


def eval_batches(split: Split, *, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """One pass over ``split`` in order; the last batch is padded, with ``mask`` 0 on padding."""
  if batch_size < 1:
    raise ConfigError(f"--config.batch_size={batch_size}: use a positive batch size, e.g. 64.")
  _check_not_empty(split)
  n = len(split)
  rows = _process_rows(batch_size)
  for start in range(0, n, batch_size):
    indices = np.arange(start, start + batch_size)
    mask = (indices < n).astype(np.float32)
    batch = split.read(np.minimum(indices, n - 1)[rows])
    batch["mask"] = mask[rows]
    yield batch


def steps_per_epoch(split: Split, batch_size: int) -> int:
  return max(1, len(split) // batch_size)
