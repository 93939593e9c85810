#!/usr/bin/env bash
# Set-up, then the main job: the Fashion-MNIST CNN (offline; about 11 CPU-minutes on 2 cores).
# Writes runs/main/{results.json,curves.png,confusion.png,misclassified.png,...}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/train.py --config experiments/cnn_fashion_mnist.py --workdir "${WORKDIR:-runs/main}" "$@"
