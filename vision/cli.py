"""Command-line plumbing shared by the entry points in ``scripts/``.

``--config experiments/X.py[:ARG]`` loads a config file, every
``--config.FIELD=VALUE`` (or ``--config.FIELD VALUE``) overrides a field of
the locked config, ``--workdir`` is where the run writes. Known user errors
print one clear message and exit with status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from vision.errors import UserError
from vision.ops import kernels


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
        raise UserError(f"{arg} needs a value: {arg}=VALUE.")
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def base_parser(description: str | None) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    description=description, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--config", required=True, help="experiments/NAME.py[:ARG]")
  parser.add_argument("--workdir", required=True, help="folder for checkpoints and outputs")
  parser.add_argument(
    "--distributed",
    action="store_true",
    help="call jax.distributed.initialize() first (multi-host runs; see README)",
  )
  return parser


def parse_args(argv=None, description=None, parser=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  rest, overrides = split_overrides(argv)
  parser = parser or base_parser(description)
  args = parser.parse_args(rest)
  if args.distributed:
    import jax

    jax.distributed.initialize()
  from vision.configs import load_config

  args.config_spec = args.config
  args.overrides = overrides
  args.config = load_config(args.config, overrides)
  return args


def print_results(results: dict) -> None:
  headline = {k: v for k, v in results.items() if "/" not in k}
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
