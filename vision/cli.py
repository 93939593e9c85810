"""Command-line plumbing shared by the entry points in ``scripts/``.

``--config experiments/X.py[:ARG]`` loads a config file, every
``--config.FIELD=VALUE`` (or ``--config.FIELD VALUE``) overrides a field of
the locked config, ``--workdir`` is where the run writes. :func:`guarded`
runs a script's ``main``: every user error (:class:`vision.errors.UserError`,
a bad command line included) prints one ``error: ...`` line and exits with
status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from vision import distributed, validate
from vision.configs import load_config
from vision.errors import ConfigError, InputError, UserError
from vision.ops import kernels


class ArgumentParser(argparse.ArgumentParser):
  """argparse whose mistakes are user errors (one ``error:`` line, exit 2, from :func:`guarded`)."""

  def error(self, message: str):
    raise InputError(f"{message} (usage: {self.prog} --help)")


def argument_parser(description: str | None) -> ArgumentParser:
  """A parser that shows ``description`` (a script's docstring) as written."""
  return ArgumentParser(
    description=description, formatter_class=argparse.RawDescriptionHelpFormatter
  )


def add_kernels_flag(parser: argparse.ArgumentParser) -> None:
  """``--kernels auto|portable|cpu`` (``args.kernel_choice``): the models' operation forms."""
  parser.add_argument(
    "--kernels",
    dest="kernel_choice",
    choices=kernels.KERNELS,
    default="auto",
    help="operation forms: auto (cpu on the CPU backend, else portable), portable or cpu",
  )


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """Separates ``--config.a.b=v`` / ``--config.a.b v`` from the other arguments."""
  rest, overrides = [], []
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      body = arg[len("--config.") :]
      if "=" in body:
        overrides.append(body)
      elif i + 1 < len(argv):
        overrides.append(f"{body}={argv[i + 1]}")
        i += 1
      else:
        raise ConfigError(f"{arg} needs a value: {arg}=VALUE.")
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def base_parser(description: str | None) -> ArgumentParser:
  parser = argument_parser(description)
  parser.add_argument("--config", required=True, help="experiments/NAME.py[:ARG]")
  parser.add_argument("--workdir", required=True, help="folder for checkpoints and outputs")
  group = parser.add_argument_group("multi-process runs (see README, Devices and hosts)")
  group.add_argument(
    "--distributed",
    action="store_true",
    help="join a multi-process run (jax.distributed) before anything else",
  )
  group.add_argument(
    "--coordinator_address", help="HOST:PORT of process 0 (else $JAX_COORDINATOR_ADDRESS)"
  )
  group.add_argument("--num_processes", type=int, help="else $JAX_NUM_PROCESSES")
  group.add_argument("--process_id", type=int, help="0..num_processes-1 (else $JAX_PROCESS_ID)")
  group.add_argument(
    "--distributed_timeout",
    type=int,
    default=300,
    help="seconds to wait for every process to join (default 300)",
  )
  group.add_argument(
    "--heartbeat_timeout",
    type=int,
    default=100,
    help="seconds after which a silent peer stops the run (default 100)",
  )
  return parser


def parse_args(argv=None, description=None, parser=None):
  """The parsed arguments; ``args.config`` is the loaded config (``args.config_spec`` its spec).

  The config and ``--workdir`` pass :func:`vision.validate.check` first: a bad value is a
  :class:`vision.errors.UserError` before anything is read or written.
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  rest, overrides = split_overrides(argv)
  parser = parser or base_parser(description)
  args = parser.parse_args(rest)
  given = [args.coordinator_address, args.num_processes, args.process_id]
  if not args.distributed and any(v is not None for v in given):
    raise InputError("--coordinator_address, --num_processes and --process_id need --distributed.")
  if args.distributed:
    distributed.initialize(
      *given, timeout_s=args.distributed_timeout, heartbeat_s=args.heartbeat_timeout
    )
  args.config_spec = args.config
  args.overrides = overrides
  args.config = load_config(args.config, overrides)
  # Every value checked before the script reads data, builds a model or writes the workdir.
  validate.check(args.config, getattr(args, "workdir", None))
  return args


def print_results(results: dict, leave_out=()) -> None:
  """The scalar-like results as indented JSON (no ``a/b`` keys, none in ``leave_out``)."""
  headline = {k: v for k, v in results.items() if "/" not in k and k not in leave_out}
  print(json.dumps(headline, indent=2, sort_keys=True))


def guarded(main, argv=None) -> int:
  """Runs ``main``; a known user error becomes one line on stderr and exit code 2."""
  kernels.apply_xla_cpu_defaults()  # before JAX starts its backend
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
  try:
    main(argv)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0
