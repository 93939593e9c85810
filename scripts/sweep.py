"""Runs a config's sweep: ``python scripts/sweep.py --config experiments/X.py --workdir ROOT``.

One workdir per point under ROOT, then ``ROOT/summary.csv`` and ``ROOT/summary.md``.
``--config.FIELD=VALUE`` overrides apply to every point; ``--points 0,2`` runs a subset.
Finished points are skipped when the sweep is started again.
"""

import sys

from vision import cli


def main(argv=None):
  parser = cli.base_parser(__doc__)
  parser.add_argument("--points", default="", help="comma-separated point indices to run")
  argv = sys.argv[1:] if argv is None else list(argv)
  rest, overrides = cli.split_overrides(argv)
  args = parser.parse_args(rest)
  if args.distributed:
    import jax

    jax.distributed.initialize()
  from vision.sweep import run_sweep

  only = [int(p) for p in args.points.split(",") if p.strip()] or None
  rows = run_sweep(args.config, args.workdir, overrides, only)
  print(open(f"{args.workdir}/summary.md").read())
  if any(str(r["status"]).startswith("failed") for r in rows):
    raise cli.UserError("some sweep points failed; see the log above and summary.csv.")


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
