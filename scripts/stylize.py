"""Neural style transfer:
``python scripts/stylize.py --config experiments/stylize.py --workdir DIR``.

Content loss at named layers, Gram-matrix style losses at several named layers
and total variation, optimized with Adam or L-BFGS (optax) from noise or from
the content image, with any backbone. Writes ``stylized.png`` (lossless, at
the working size), ``style_transfer.png`` (content | style | result) and
``results.json`` (losses every ``log_every`` steps, seconds). See docs/optimize.md;
the run is :mod:`vision.drivers.stylize`.
"""

import sys

from vision import cli
from vision.drivers import stylize


def main(argv=None):
  args = cli.parse_args(argv, description=__doc__)
  results = stylize.run(args.config, args.workdir)
  cli.print_results(results, leave_out=("losses",))


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
