"""Trains one experiment: ``python scripts/train.py --config experiments/X.py[:ARG] --workdir DIR``.

Overrides: ``--config.FIELD=VALUE`` (e.g. ``--config.optim.learning_rate=0.01``).
This file is intentionally thin; the work happens in :mod:`vision.train.loop`.
"""

import sys

from vision import cli
from vision.train import loop


def main(argv=None):
  args = cli.parse_args(argv, description=__doc__)
  results = loop.run(args.config, args.workdir)
  cli.print_results(results)


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
