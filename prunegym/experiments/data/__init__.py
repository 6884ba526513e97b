"""Datasets by name, with deterministic, disjoint train / reward_val / test splits.

- :mod:`~prunegym.experiments.data.registry`: name -> loader (``register_dataset``);
- :mod:`~prunegym.experiments.data.builtin` and :mod:`~prunegym.experiments.data.fashion_mnist`:
  the registered datasets;
- :mod:`~prunegym.experiments.data.splits`: ``DataSplits`` and the split rules;
- :mod:`~prunegym.experiments.data.transforms`: raw samples -> model inputs;
- :mod:`~prunegym.experiments.data.build`: ``build_data`` / ``build_data_like``.
"""

from __future__ import annotations

# Importing the loader modules registers their datasets.
from prunegym.experiments.data import builtin as builtin
from prunegym.experiments.data import fashion_mnist as fashion_mnist
from prunegym.experiments.data.build import build_data, build_data_like
from prunegym.experiments.data.fashion_mnist import FASHION_MNIST_SYSTEM_DIR, find_fashion_mnist
from prunegym.experiments.data.registry import DATASETS, dataset_names, register_dataset
from prunegym.experiments.data.splits import (
    SPLITS,
    DataSplits,
    SplitDataset,
    default_reward_val_size,
)

__all__ = [
    "DATASETS",
    "FASHION_MNIST_SYSTEM_DIR",
    "SPLITS",
    "DataSplits",
    "SplitDataset",
    "build_data",
    "build_data_like",
    "dataset_names",
    "default_reward_val_size",
    "find_fashion_mnist",
    "register_dataset",
]
