"""Deterministic, disjoint train / reward_val / test splits over one pool of samples.

Every split keeps its global pool indices (``DataSplits.indices``) so later code can
assert that an evaluator never touches the test set. ``reward_val`` is drawn from the
training part with ``seed`` and removed from ``train``: the search's reward reads it,
training never does, and ``test`` is for final reports only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from prunegym.experiments.data.subsets import (
    SPLITS,
    SplitDataset,
    carve_reward_val,
    check_reward_val_size,
    default_reward_val_size,
    fixed_test_slice,
)

__all__ = [
    "SPLITS",
    "DataSplits",
    "SplitDataset",
    "carve_reward_val",
    "check_reward_val_size",
    "default_reward_val_size",
    "fixed_test_slice",
]


@dataclass(frozen=True, eq=False)
class DataSplits:
    """A dataset split three ways, plus what models and the search need to know about it.

    ``train`` yields augmented samples (where the dataset has augmentation); ``reward_val``
    and ``test`` never do; ``plain_train`` is ``train`` without augmentation (``None``:
    ``train`` itself). ``indices[split]`` are the global pool indices of each split.
    Build one with :func:`~prunegym.experiments.data.build_data` (a dataset by name),
    :meth:`from_tensors` or :meth:`from_datasets` (your own data).
    """

    name: str
    train: SplitDataset
    reward_val: SplitDataset
    test: SplitDataset
    num_classes: int
    in_channels: int
    image_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    seed: int
    reward_val_size: int
    options: Mapping[str, Any] = field(default_factory=dict)
    plain_train: SplitDataset | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """The splits share no sample: above all, the reward split is never the test split."""
        for a, b in (("reward_val", "test"), ("train", "test"), ("train", "reward_val")):
            shared = np.intersect1d(self.split(a).indices, self.split(b).indices)
            if len(shared):
                raise ValueError(
                    f"{self.name}: {a} and {b} share {len(shared)} samples "
                    f"(global index {int(shared[0])}); the splits must be disjoint"
                )

    @property
    def indices(self) -> Mapping[str, np.ndarray]:
        """Global pool indices of each split (read-only arrays)."""
        return MappingProxyType({s: self.split(s).indices for s in SPLITS})

    @classmethod
    def from_tensors(
        cls,
        train: tuple[torch.Tensor, torch.Tensor],
        reward_val: tuple[torch.Tensor, torch.Tensor] | None = None,
        test: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        reward_val_size: int | None = None,
        seed: int = 0,
        num_classes: int | None = None,
        name: str = "tensors",
    ) -> DataSplits:
        """Splits over your own tensors ``(inputs, integer labels)``, used as given (no copy).

        Without ``reward_val``, ``reward_val_size`` samples (default 10% of train, at most
        5000) are drawn from ``train`` with ``seed`` and removed from it. Without ``test``
        the test split is empty (final reports need one). ``num_classes`` defaults to the
        largest label + 1. Inputs are fed to the model exactly as given.
        """
        from prunegym.experiments.data.custom import splits_from_tensors

        return splits_from_tensors(
            cls, train, reward_val, test, reward_val_size=reward_val_size, seed=seed,
            num_classes=num_classes, name=name,
        )  # fmt: skip

    @classmethod
    def from_datasets(
        cls,
        train: Dataset,
        reward_val: Dataset | None = None,
        test: Dataset | None = None,
        *,
        plain_train: Dataset | None = None,
        reward_val_size: int | None = None,
        seed: int = 0,
        num_classes: int | None = None,
        name: str = "datasets",
    ) -> DataSplits:
        """Splits over any map-style ``torch.utils.data.Dataset`` of ``(tensor, label)`` items.

        As :meth:`from_tensors`. When ``train`` augments, pass ``plain_train``: the same
        samples in the same order without augmentation; a carved ``reward_val`` and the
        calibration batches (BN recalibration, reconstruction) read it. ``num_classes``
        defaults to the largest label + 1 (read from ``targets`` where a dataset has it).
        """
        from prunegym.experiments.data.custom import splits_from_datasets

        return splits_from_datasets(
            cls, train, reward_val, test, plain_train=plain_train, reward_val_size=reward_val_size,
            seed=seed, num_classes=num_classes, name=name,
        )  # fmt: skip

    def __deepcopy__(self, memo: dict) -> DataSplits:
        """Immutable: a deep copy (as Gymnasium's env checker makes) is the object itself."""
        return self

    @property
    def example_input(self) -> torch.Tensor:
        """A one-sample batch ``(1, C, H, W)`` from ``train`` (never from test), no augmentation."""
        return self.plain("train")[0][0].unsqueeze(0)

    def split(self, name: str) -> SplitDataset:
        """The dataset of split ``name`` (``train``, ``reward_val`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
        return getattr(self, name)

    def plain(self, name: str) -> SplitDataset:
        """Split ``name`` without augmentation (for calibration and measuring train accuracy)."""
        if name == "train" and self.plain_train is not None:
            return self.plain_train
        return self.split(name)

    def train_subset(self, n: int, seed: int = 0) -> DataSplits:
        """These splits with ``train`` cut to ``n`` of its samples, drawn with ``seed``.

        The same ``n`` and ``seed`` give the same samples (kept in split order; the
        un-augmented ``plain_train`` is cut alike); ``reward_val`` and ``test`` are
        unchanged. ``n`` must lie in ``[1, len(train)]`` (else ValueError).
        """
        size = len(self.train)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= size:
            raise ValueError(f"train_samples must be an integer in [1, {size}] (the train split "
                             f"of {self.name} has {size} samples), got {n!r}")  # fmt: skip
        keep = np.sort(np.random.default_rng(seed).choice(size, int(n), replace=False))

        def cut(ds: SplitDataset) -> SplitDataset:
            return SplitDataset(ds.pool, ds.indices[keep], ds.split, ds.transform, ds.augment)

        train = cut(self.train)
        plain = self.plain_train
        if plain is not None:
            plain = train if plain is self.train else cut(plain)
        return replace(self, train=train, plain_train=plain)

    def loader(
        self,
        split: str,
        batch_size: int = 128,
        shuffle: bool | None = None,
        seed: int = 0,
        *,
        augment: bool | None = None,
        num_workers: int = 0,
        drop_last: bool = False,
        pin_memory: bool = False,
    ) -> DataLoader:
        """A DataLoader over ``split``; shuffles (seeded) and augments by default only for train."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shuffle = split == "train" if shuffle is None else shuffle
        augment = split == "train" if augment is None else augment
        dataset = self._non_empty(self.split(split) if augment else self.plain(split))
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(seed) if shuffle else None,
            num_workers=num_workers,
            drop_last=drop_last,
            pin_memory=pin_memory,
        )

    def calibration_batches(
        self, n: int, batch_size: int = 64, seed: int = 0
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` batches ``(x, y)`` of distinct un-augmented train samples, drawn with ``seed``."""
        train = self.plain("train")
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if n * batch_size > len(train):
            raise ValueError(
                f"{n} calibration batches of {batch_size} need {n * batch_size} samples; "
                f"train has {len(train)}"
            )
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        batches = []
        for b in range(n):
            items = [train[int(i)] for i in order[b * batch_size : (b + 1) * batch_size]]
            xs, ys = zip(*items, strict=True)
            batches.append((torch.stack(xs), torch.tensor(ys, dtype=torch.int64)))
        return batches

    def tensors(self, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``limit`` samples of ``split`` (all by default), un-augmented, as tensors."""
        ds = self._non_empty(self.plain(split))
        n = len(ds) if limit is None else min(limit, len(ds))
        raw = ds.pool.take(ds.indices[:n])  # one indexing op, one transform, where possible
        if raw is not None:
            return ds.transform(raw[0]), raw[1]
        xs, ys = zip(*(ds[i] for i in range(n)), strict=True)
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)

    def _non_empty(self, ds: SplitDataset) -> SplitDataset:
        if len(ds) == 0:
            raise ValueError(f"{self.name} has no {ds.split} samples: give it a {ds.split} split")
        return ds

    def describe(self) -> dict[str, Any]:
        """Plain-JSON description for checkpoints and run dirs; ``build_data_like`` reads it."""
        return {
            "name": self.name,
            "seed": self.seed,
            "reward_val_size": self.reward_val_size,
            "sizes": {s: len(self.split(s)) for s in SPLITS},
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "options": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options.items()
            },
        }
