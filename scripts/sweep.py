"""Runs a config's sweep: ``python scripts/sweep.py --config experiments/X.py --workdir ROOT``.

One workdir per point under ROOT, then ``ROOT/summary.csv`` and ``ROOT/summary.md``.
``--config.FIELD=VALUE`` overrides apply to every point; ``--points 0,2`` runs a subset.
``--seeds N`` runs every point N times, with config.seed = s, s+1, ..., s+N-1 (s: the
point's seed, 0 by default), in ROOT/<point>/seed_<seed>, and the summaries give each
metric's mean ± sample standard deviation and its per-seed values.
Finished runs are skipped when the sweep is started again. The run is
:mod:`vision.drivers.sweep`.
"""

import sys

from vision import cli
from vision.drivers import sweep


def main(argv=None):
  parser = cli.base_parser(__doc__)
  parser.add_argument("--points", default="", help="comma-separated point indices to run")
  parser.add_argument(
    "--seeds",
    type=int,
    default=1,
    help="runs per point, with seeds s, s+1, ... (s: the point's config.seed; default 1)",
  )
  args = cli.parse_args(argv, parser=parser)
  sweep.main(args.config_spec, args.workdir, args.overrides, args.points, args.seeds)


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
