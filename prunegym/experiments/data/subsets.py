"""The pieces splits are made of: split names, reward_val carving, the fixed test slice
and :class:`SplitDataset` (one split's view of a pool)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from prunegym.experiments.data.pools import Pool

__all__ = [
    "SPLITS",
    "SplitDataset",
    "carve_reward_val",
    "check_reward_val_size",
    "default_reward_val_size",
    "fixed_test_slice",
]

SPLITS = ("train", "reward_val", "test")
_TEST_FRACTION = 0.2  # test slice of datasets without their own test files
_TEST_SEED = 0x7E57  # constant: the test slice does not move with the split seed


def default_reward_val_size(n_train_pool: int) -> int:
    """10% of the training pool, at most 5000 (so 5000 for Fashion-MNIST and CIFAR-10)."""
    return max(1, min(5000, round(0.1 * n_train_pool)))


def check_reward_val_size(size: Any, n_train_pool: int, name: str) -> int:
    """``size`` (default: :func:`default_reward_val_size`) checked against the training part."""
    if size is None:
        size = default_reward_val_size(n_train_pool)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"reward_val_size must be an integer, got {size!r}")
    if not 1 <= size < n_train_pool:
        raise ValueError(
            f"reward_val_size must be in [1, {n_train_pool - 1}] for {name} "
            f"(training part has {n_train_pool} samples), got {size}"
        )
    return int(size)


def fixed_test_slice(n_pool: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_pool, test)`` indices: a constant 20% test slice, whatever the split seed."""
    order = np.random.default_rng(_TEST_SEED).permutation(n_pool)
    n_test = math.ceil(_TEST_FRACTION * n_pool)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def carve_reward_val(train_pool: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, reward_val)``: ``size`` samples of ``train_pool`` drawn with ``seed``, sorted."""
    perm = np.random.default_rng(seed).permutation(train_pool)
    return np.sort(perm[size:]), np.sort(perm[:size])


class SplitDataset(Dataset):
    """One split of a pool: a torch Dataset of ``(input, label)`` over global ``indices``."""

    def __init__(
        self,
        pool: Pool,
        indices: np.ndarray,
        split: str,
        transform: Callable[[Any], torch.Tensor],
        augment: bool,
    ) -> None:
        self.pool = pool
        self.indices = indices
        self.indices.flags.writeable = False
        self.split = split
        self.transform = transform
        self.augment = augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.pool.raw(int(self.indices[i]))
        return self.transform(x), y

    def __repr__(self) -> str:
        return f"SplitDataset({self.split!r}, n={len(self)}, augment={self.augment})"

    def __deepcopy__(self, memo: dict) -> SplitDataset:
        """Read-only (its indices cannot change): a deep copy is the object itself."""
        return self
