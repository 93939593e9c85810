"""Adversarial examples: ``python scripts/attack.py --config experiments/attack.py --workdir DIR``.

PGD / FGSM (L-inf or L2, targeted or not) against an ImageNet backbone on
photos (``task='imagenet'``), or the robust-accuracy-vs-eps curve and transfer
between two project classifiers (``task='fashion_mnist'``). Writes the
original, adversarial (lossless PNG at the input size) and amplified
perturbation images, a figure and ``results.json``. See docs/optimize.md;
the run is :mod:`vision.drivers.attack`.
"""

import sys

from vision import cli
from vision.drivers import attack


def main(argv=None):
  args = cli.parse_args(argv, description=__doc__)
  results = attack.run(args.config, args.workdir)
  cli.print_results({k: v for k, v in results.items() if not isinstance(v, (list, dict))})


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
