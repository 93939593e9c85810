"""Runs a config's sweep: ``python scripts/sweep.py --config experiments/X.py --workdir ROOT``.

One workdir per point under ROOT, then ``ROOT/summary.csv`` and ``ROOT/summary.md``.
``--config.FIELD=VALUE`` overrides apply to every point; ``--points 0,2`` runs a subset.
Finished points are skipped when the sweep is started again. The run is
:mod:`vision.drivers.sweep`.
"""

import sys

from vision import cli
from vision.drivers import sweep


def main(argv=None):
  parser = cli.base_parser(__doc__)
  parser.add_argument("--points", default="", help="comma-separated point indices to run")
  args = cli.parse_args(argv, parser=parser)
  sweep.main(args.config_spec, args.workdir, args.overrides, args.points)


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
