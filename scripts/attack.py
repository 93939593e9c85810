"""Adversarial examples: ``python scripts/attack.py --config experiments/attack.py --workdir DIR``.

PGD / FGSM (L-inf or L2, targeted or not) against an ImageNet backbone on
photos (``task='imagenet'``), or the robust-accuracy-vs-eps curve and transfer
between two project classifiers (``task='fashion_mnist'``). Writes the
original, adversarial (lossless PNG at the input size) and amplified
perturbation images, a figure and ``results.json``. See docs/optimize.md.
"""

import sys

from vision import cli


def main(argv=None):
  args = cli.parse_args(argv, description=__doc__)
  from vision.optimize import attacks

  config = args.config
  if config.task == "imagenet":
    results = attacks.run_images(config, args.workdir)
  elif config.task == "fashion_mnist":
    results = attacks.run_robustness(config, args.workdir)
  else:
    raise cli.UserError(f"config.task={config.task!r}; use 'imagenet' or 'fashion_mnist'.")
  cli.print_results({k: v for k, v in results.items() if not isinstance(v, (list, dict))})


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
