"""On-disk cache of converted weights: one ``NAME.npz`` per backbone.

Converting needs torch or h5py and takes seconds; loading an ``.npz`` needs
only numpy. Keys are flattened variable paths (``params/block_0/expand_conv/kernel``,
``batch_stats/...``); ``__meta__/format`` records the source convention
(``torch``/``keras``), which decides the architecture variant to build.
The directory is ``$VISION_WEIGHTS_DIR`` or ``~/.cache/vision/weights``.
"""

from __future__ import annotations

import os
import pathlib
import zipfile

import numpy as np

from vision.errors import WeightsError

META_PREFIX = "__meta__/"


def weights_dir() -> pathlib.Path:
  """Cache directory (``$VISION_WEIGHTS_DIR`` overrides ``~/.cache/vision/weights``)."""
  env = os.environ.get("VISION_WEIGHTS_DIR")
  if env:
    return pathlib.Path(env).expanduser()
  return pathlib.Path("~/.cache/vision/weights").expanduser()


def cache_path(name: str) -> pathlib.Path:
  return weights_dir() / f"{name}.npz"


def save_npz(path: str | os.PathLike, flat: dict[str, np.ndarray], meta: dict[str, str]) -> None:
  """Writes flat ``{path: array}`` plus string metadata atomically (tmp file + rename)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  arrays = {k: np.asarray(v) for k, v in flat.items()}
  arrays.update({META_PREFIX + k: np.array(str(v)) for k, v in meta.items()})
  tmp = path.with_name(path.name + f".tmp{os.getpid()}")
  with open(tmp, "wb") as f:
    np.savez(f, **arrays)
  os.replace(tmp, path)


def npz_problem(path: str | os.PathLike) -> str | None:
  """Why ``path`` is not a readable ``.npz`` archive (its directory, at the end of the file,
  does not read: a truncated copy), or None; reads no arrays."""
  try:
    with zipfile.ZipFile(path) as archive:
      archive.namelist()
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    return str(e)
  return None


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Reads a file written by ``save_npz`` (no pickle): ``(flat arrays, metadata)``."""
  try:
    with np.load(path, allow_pickle=False) as data:
      flat, meta = {}, {}
      for key in data.files:
        if key.startswith(META_PREFIX):
          meta[key[len(META_PREFIX) :]] = str(data[key])
        else:
          flat[key] = data[key]
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise WeightsError(
      f"{path} is not a readable converted-weights .npz file ({e}); convert the weights again "
      "with `python scripts/convert_weights.py NAME /path/to/checkpoint`."
    ) from e
  return flat, meta
