"""Class / feature visualization: ``python scripts/visualize.py --config experiments/visualize.py
--workdir DIR``.

Optimizes images from noise (decorrelated Fourier parameterization, random
jitter / scale / rotation each step, Adam) to maximize ImageNet classes or one
channel of a named layer; saves each picture as a lossless PNG at the model's
input size, a labelled figure and ``results.json`` (final target
probabilities). See docs/optimize.md; the run is :mod:`vision.drivers.visualize`.
"""

import sys

from vision import cli
from vision.drivers import visualize


def main(argv=None):
  args = cli.parse_args(argv, description=__doc__)
  results = visualize.run(args.config, args.workdir)
  cli.print_results(results, leave_out=("losses", "top", "files"))


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
