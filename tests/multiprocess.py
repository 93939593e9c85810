"""Starting the processes of one multi-process run on this machine, for tests.

:func:`launch` runs ``python scripts/<script> --distributed ARGS`` as N local
processes joined through ``JAX_COORDINATOR_ADDRESS=localhost:<free port>``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (the README's manual multi-host
commands, with every host on localhost), each with one CPU device. It waits at
most ``timeout`` seconds, and kills every process still running at the end,
so a test never hangs when one of them dies.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from tests.conftest import with_test_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@dataclasses.dataclass
class Finished:
  returncode: int | None  # None: killed at the deadline
  stdout: str
  stderr: str
  seconds: float


def launch(
  script: str,
  *args: str,
  num_processes: int = 2,
  timeout: float = 300,
  extra_env: dict | list[dict] | None = None,
  distributed_args: tuple[str, ...] = ("--distributed_timeout=60", "--heartbeat_timeout=10"),
) -> list[Finished]:
  """Runs ``script`` as ``num_processes`` processes of one run; returns each one's outcome.

  ``extra_env``: added to every process's environment, or a list of one dict per process.
  """
  port = free_port()
  env = dict(os.environ)
  env["XLA_FLAGS"] = with_test_flags()  # one CPU device per process
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  per_process = extra_env if isinstance(extra_env, list) else [extra_env or {}] * num_processes
  procs, logs = [], []
  start = time.time()
  for index in range(num_processes):
    proc_env = {
      **env,
      "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
      "JAX_NUM_PROCESSES": str(num_processes),
      "JAX_PROCESS_ID": str(index),
      **per_process[index],
    }
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    logs.append((out, err))
    procs.append(
      subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", script), "--distributed"]
        + [*distributed_args, *args],
        cwd=ROOT,
        env=proc_env,
        stdout=out,
        stderr=err,
        start_new_session=True,
      )
    )
  ended = [None] * num_processes
  try:
    while time.time() - start < timeout and any(e is None for e in ended):
      for i, p in enumerate(procs):
        if ended[i] is None and p.poll() is not None:
          ended[i] = time.time() - start
      time.sleep(0.2)
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
      p.wait()
  results = []
  for i, (p, (out, err)) in enumerate(zip(procs, logs)):
    texts = []
    for f in (out, err):
      f.seek(0)
      texts.append(f.read())
      f.close()
    killed = ended[i] is None
    results.append(
      Finished(
        None if killed else p.returncode, texts[0], texts[1], ended[i] or time.time() - start
      )
    )
  return results
