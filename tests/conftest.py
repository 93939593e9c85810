"""Shared fixtures: a private TFDS data dir, Fashion-MNIST (real if installed), runners."""

from __future__ import annotations

import atexit
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from vision.ops import kernels

# Most of this suite's time is XLA compiling small programs, not running them. Tests compile
# at the backend's lowest optimization level (LLVM -O0 on the CPU): the same programs (HLO,
# fusions, library calls for convolutions and matmuls), with less machine-code optimization
# of the fused loops. Every process a test starts gets the same flag (``with_test_flags``).
# VISION_TEST_XLA_OPT=default compiles as the scripts do (scripts/gpu_check.sh sets it).
TEST_XLA_FLAGS = (
  "" if os.environ.get("VISION_TEST_XLA_OPT") == "default" else "--xla_backend_optimization_level=0"
)


def with_test_flags(flags: str = "") -> str:
  """``flags`` (an ``XLA_FLAGS`` value) with the suite's compilation flags added."""
  if not TEST_XLA_FLAGS or "--xla_backend_optimization_level" in flags:
    return flags
  return f"{flags} {TEST_XLA_FLAGS}".strip()


os.environ["XLA_FLAGS"] = with_test_flags(os.environ.get("XLA_FLAGS", ""))
# As the entry points do, before JAX starts its backend.
kernels.apply_xla_cpu_defaults()

# One XLA compilation cache for the whole test run, shared by the pytest-xdist workers
# and the scripts the tests start (they inherit the environment): many tests compile the
# same tiny programs (the tiny configs' steps, run again to resume after a kill). A
# cached executable is the same program, so results stay bit-identical. The first
# process to load this file (the xdist controller) picks the folder.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="vision-tests-xla-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)  # by the process that made it


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def write_idx(path: str, array: np.ndarray) -> None:
  header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
    ">" + "I" * array.ndim, *array.shape
  )
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def truncated_npz(path) -> str:
  """A small ``.npz`` archive written to ``path`` and cut to half its length, as a copy
  interrupted part way leaves it."""
  np.savez(path, kernel=np.ones((64, 64), np.float32))
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  return str(path)


def synthetic_fashion_mnist(folder: str, n_train: int = 2000, n_test: int = 500) -> str:
  """IDX files of 10 learnable classes (a bright bar whose position is the label)."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
      images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 220
    write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), images)
    write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), labels)
  return folder


def pytest_collection_modifyitems(items):
  """``-m "not data"`` selects the tests that need no dataset (scripts/gpu_check.sh)."""
  for item in items:
    if "data_env" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.data)


@pytest.fixture
def pinned_kernels(monkeypatch):
  """For tests that set both kernel forms themselves (``kernels.use('cpu')`` ...): without
  ``$VISION_KERNELS``, which would override their choice (scripts/gpu_check.sh sets it)."""
  monkeypatch.delenv("VISION_KERNELS", raising=False)


@pytest.fixture(scope="session")
def data_env(tmp_path_factory) -> dict[str, str]:
  """Environment for runs: a fresh TFDS data dir, and Fashion-MNIST files."""
  env = {"TFDS_DATA_DIR": str(tmp_path_factory.mktemp("tfds"))}
  if not os.path.exists(os.path.join(REAL_FASHION_MNIST, "t10k-labels-idx1-ubyte.gz")):
    env["VISION_FASHION_MNIST_DIR"] = synthetic_fashion_mnist(
      str(tmp_path_factory.mktemp("fashion_idx"))
    )
  os.environ.update(env)
  return env


def run_script(
  script: str,
  *args: str,
  env: dict | None = None,
  timeout: int = 600,
  check: bool = False,
  extra_env: dict | None = None,
) -> subprocess.CompletedProcess:
  full_env = dict(os.environ)
  full_env.update(env or {})
  full_env.update(extra_env or {})
  full_env["XLA_FLAGS"] = with_test_flags(full_env.get("XLA_FLAGS", ""))
  full_env.setdefault("PYTHONPATH", ROOT)
  proc = subprocess.run(
    [sys.executable, os.path.join(ROOT, "scripts", script), *args],
    cwd=ROOT,
    env=full_env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  if check and proc.returncode != 0:
    raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
  return proc


# Results that differ between otherwise identical runs.
TIMING_KEYS = ("wall_seconds", "train_seconds")


def metrics_of(results: dict) -> dict:
  """``results`` without its timing keys: what two identical runs must agree on."""
  return {k: v for k, v in results.items() if k not in TIMING_KEYS}


def train_losses(workdir) -> dict[int, float]:
  """step -> train/loss of the records in ``workdir/metrics.jsonl``."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  return {r["step"]: r["train/loss"] for r in records if "train/loss" in r}
