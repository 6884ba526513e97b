#!/usr/bin/env bash
# The standard workload of the search benchmarks: ResNet-20 trained on Fashion-MNIST.
#
#   bash benchmarks/train_fashion_mnist.sh            # -> runs/resnet20-fmnist/{model.pt,metrics.json}
#   bash benchmarks/train_fashion_mnist.sh --force    # retrain over an existing checkpoint
#
# Needs the four Fashion-MNIST IDX files: `apt-get install dataset-fashion-mnist`, or
# PRUNEGYM_DATA=DIR / --data-dir DIR. Extra arguments go to `prunegym train`.
# Environment: PYTHON (default .venv/bin/python), OUT (default runs/resnet20-fmnist),
# EPOCHS (default 15: about 30 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/resnet20-fmnist}
EPOCHS=${EPOCHS:-15}
exec "$PYTHON" -m prunegym train --model resnet20 --dataset fashion-mnist --epochs "$EPOCHS" \
    --seed 0 --split-seed 0 --out "$OUT" "$@"
