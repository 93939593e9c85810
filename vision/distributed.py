"""Joining a multi-process run: ``jax.distributed.initialize`` with bounded waits.

Every process of a run calls :func:`initialize` before JAX starts its backend.
The coordinator's address, the number of processes and this process's id come
from the arguments, else from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``
and ``JAX_PROCESS_ID``, else from JAX's own cluster detection (TPU pods, SLURM,
Open MPI). On the CPU backend the cross-process collectives are gloo's.

JAX's runtime aborts the process when the coordinator cannot be reached or a
peer never joins; a watchdog turns both into one ``error:`` line and exit
status 2 after ``timeout_s`` seconds. Once running, a process whose peer dies
stops with an error within ``heartbeat_s`` seconds (JAX's health checks) or at
its next collective, whichever comes first.
"""

from __future__ import annotations

import os
import sys
import threading

import jax

from vision.errors import ConfigError

ENV = {
  "coordinator_address": "JAX_COORDINATOR_ADDRESS",
  "num_processes": "JAX_NUM_PROCESSES",
  "process_id": "JAX_PROCESS_ID",
}


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise ConfigError(f"{name}={value!r} is not an integer.") from None


def resolve(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> tuple[str | None, int | None, int | None]:
  """The explicit values, filled in from the environment; None where neither gives one."""
  coordinator_address = coordinator_address or os.environ.get(ENV["coordinator_address"]) or None
  if num_processes is None:
    num_processes = _env_int(ENV["num_processes"])
  if process_id is None:
    process_id = _env_int(ENV["process_id"])
  given = [v is not None for v in (coordinator_address, num_processes, process_id)]
  if any(given) and not all(given):
    missing = [
      f"--{name} (or {ENV[name]})"
      for name, v in zip(ENV, (coordinator_address, num_processes, process_id))
      if v is None
    ]
    raise ConfigError(
      f"a multi-process run given some of its coordinates needs all three; missing: "
      f"{', '.join(missing)}. Give none of them to let JAX detect a TPU, SLURM or Open MPI "
      "cluster."
    )
  if num_processes is not None and num_processes < 1:
    raise ConfigError(f"the number of processes must be at least 1, not {num_processes}.")
  if process_id is not None and not 0 <= process_id < num_processes:
    raise ConfigError(
      f"process id {process_id} is outside 0..{num_processes - 1} for {num_processes} processes."
    )
  if coordinator_address is not None and ":" not in coordinator_address:
    raise ConfigError(
      f"coordinator address {coordinator_address!r} needs a port: HOST:PORT (e.g. "
      "10.0.0.1:1234, the address of process 0)."
    )
  return coordinator_address, num_processes, process_id


def _abort(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)
  os._exit(2)


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  *,
  timeout_s: int = 300,
  heartbeat_s: int = 100,
) -> None:
  """Joins this process to the run (see the module docstring); call before any JAX work."""
  coordinator_address, num_processes, process_id = resolve(
    coordinator_address, num_processes, process_id
  )
  if timeout_s < 1 or heartbeat_s < 1:
    raise ConfigError("the distributed timeouts must be at least 1 second.")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if process_id == 0 or coordinator_address is None:
    hint = "did every process start, with the same process count and coordinator address?"
  else:
    hint = (
      f"is process 0 running and reachable at {coordinator_address}, with the same process count?"
    )
  who = "" if process_id is None else f"process {process_id} of {num_processes}: "
  watchdog = threading.Timer(
    timeout_s,
    _abort,
    (f"{who}the run's processes did not all join within {timeout_s} s; {hint}",),
  )
  watchdog.daemon = True
  watchdog.start()
  try:
    # JAX's own deadline is later than the watchdog's, so the error above is the one shown.
    jax.distributed.initialize(
      coordinator_address=coordinator_address,
      num_processes=num_processes,
      process_id=process_id,
      initialization_timeout=timeout_s + 30,
      heartbeat_timeout_seconds=heartbeat_s,
    )
  except (ValueError, TypeError, RuntimeError) as e:
    raise ConfigError(
      f"cannot start a multi-process run ({e}). Give --coordinator_address, --num_processes "
      "and --process_id (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), or "
      "run on a TPU, SLURM or Open MPI cluster that JAX detects."
    ) from None
  finally:
    watchdog.cancel()


def is_main() -> bool:
  """Whether this process writes the run's files (process 0)."""
  return jax.process_index() == 0
