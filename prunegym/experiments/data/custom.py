"""``DataSplits`` over the caller's own data: ``DataSplits.from_tensors`` / ``from_datasets``.

The given splits are laid one after another in one global index space (train, then
reward_val, then test), so the split indices are disjoint by construction. Nothing is
copied: the pools keep references to the caller's tensors and datasets.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from prunegym.experiments.data.pools import ConcatPool, DatasetPool, Pool, TensorPool
from prunegym.experiments.data.subsets import (
    SPLITS,
    SplitDataset,
    carve_reward_val,
    check_reward_val_size,
)

if TYPE_CHECKING:
    from prunegym.experiments.data.splits import DataSplits

__all__ = ["IN_MEMORY_SOURCES", "identity", "splits_from_datasets", "splits_from_tensors"]

#: ``DataSplits.options["source"]`` of splits built from in-memory data (not rebuildable).
IN_MEMORY_SOURCES = ("tensors", "datasets")


def identity(x: Any) -> Any:
    """The transform of user data: inputs go to the model exactly as given."""
    return x


def splits_from_tensors(
    cls: type[DataSplits],
    train: Any,
    reward_val: Any = None,
    test: Any = None,
    *,
    reward_val_size: int | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    name: str = "tensors",
) -> DataSplits:
    """See :meth:`DataSplits.from_tensors`."""
    given = {"train": train, "reward_val": reward_val, "test": test}
    parts = {s: _tensor_pool(pair, s) for s, pair in given.items() if pair is not None}
    for a, b in (("train", "reward_val"), ("train", "test"), ("reward_val", "test")):
        if a in parts and b in parts and _same_storage(parts[a].images, parts[b].images):
            raise ValueError(f"{a} and {b} are the same tensors: the splits must be disjoint")
    top = max(int(p.labels.max()) for p in parts.values())
    classes = _classes(num_classes, top)
    return _assemble(cls, name, parts, None, reward_val_size, seed, classes, "tensors")


def splits_from_datasets(
    cls: type[DataSplits],
    train: Any,
    reward_val: Any = None,
    test: Any = None,
    *,
    plain_train: Any = None,
    reward_val_size: int | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    name: str = "datasets",
) -> DataSplits:
    """See :meth:`DataSplits.from_datasets`."""
    given = {"train": train, "reward_val": reward_val, "test": test, "plain_train": plain_train}
    datasets = {s: _check_dataset(ds, s) for s, ds in given.items() if ds is not None}
    for a, b in (("train", "reward_val"), ("train", "test"), ("reward_val", "test")):
        if a in datasets and b in datasets and datasets[a] is datasets[b]:
            raise ValueError(f"{a} and {b} are the same dataset: the splits must be disjoint")
    if plain_train is not None and len(plain_train) != len(train):
        raise ValueError(
            f"plain_train has {len(plain_train)} samples, train {len(train)}: it must be the "
            "same samples without augmentation"
        )
    parts: dict[str, Pool] = {s: DatasetPool(datasets[s]) for s in SPLITS if s in datasets}
    top = max(_max_label(datasets[s], s) for s in parts) if num_classes is None else -1
    plain = DatasetPool(plain_train) if plain_train is not None else None
    classes = _classes(num_classes, top)
    return _assemble(cls, name, parts, plain, reward_val_size, seed, classes, "datasets")


# ----------------------------------------------------------------------------- checks


def _tensor_pool(pair: Any, split: str) -> TensorPool:
    if not (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(t, torch.Tensor) for t in pair)
    ):
        raise ValueError(f"{split} must be a pair of tensors (inputs, labels), got {_kind(pair)}")
    x, y = pair
    if x.dim() < 2:
        raise ValueError(f"{split} inputs must be (N, ...), one row per sample, got {_shape(x)}")
    if y.dim() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{split} labels must be a 1-D integer tensor, got {y.dtype} {_shape(y)}")
    if len(x) != len(y):
        raise ValueError(f"{split} has {len(x)} inputs but {len(y)} labels")
    if len(y) == 0:
        raise ValueError(f"{split} is empty")
    if int(y.min()) < 0:
        raise ValueError(f"{split} labels must be >= 0 (class indices), got {int(y.min())}")
    return TensorPool(x, y if y.dtype == torch.int64 else y.long())


def _same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


def _check_dataset(ds: Any, split: str) -> Dataset:
    if isinstance(ds, (torch.Tensor, tuple, Mapping)) or not (
        hasattr(ds, "__len__") and hasattr(ds, "__getitem__")
    ):
        raise ValueError(
            f"{split} must be a map-style torch Dataset (len() and [i]), got {_kind(ds)}"
        )
    if len(ds) == 0:
        raise ValueError(f"{split} is empty")
    item = ds[0]
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise ValueError(f"{split}[0] must be a pair (input, label), got {_kind(item)}")
    if not isinstance(item[0], torch.Tensor) or item[0].dim() < 1:
        raise ValueError(
            f"{split}[0] input must be a tensor with at least one dimension, got "
            f"{_kind(item[0])} (give the dataset a transform such as ToTensor)"
        )
    return ds


def _max_label(ds: Any, split: str) -> int:
    """The largest label (``targets`` when the dataset has it, else one pass over it)."""
    targets = getattr(ds, "targets", None)
    if targets is not None and len(targets) == len(ds):
        labels = np.asarray(targets)
    else:
        labels = np.array([int(ds[i][1]) for i in range(len(ds))])
    if labels.min() < 0:
        raise ValueError(f"{split} labels must be >= 0 (class indices), got {labels.min()}")
    return int(labels.max())


def _classes(num_classes: int | None, top_label: int) -> int:
    if num_classes is None:
        return top_label + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if top_label >= num_classes:
        raise ValueError(f"label {top_label} is out of range for num_classes={num_classes}")
    return num_classes


def _kind(obj: Any) -> str:
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)}"
    return type(obj).__name__


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


# ----------------------------------------------------------------------------- assembly


def _assemble(
    cls: type[DataSplits],
    name: str,
    parts: Mapping[str, Pool],
    plain_train: Pool | None,
    reward_val_size: int | None,
    seed: int,
    num_classes: int,
    source: str,
) -> DataSplits:
    order = [s for s in SPLITS if s in parts]
    pool = ConcatPool([parts[s] for s in order])
    plain_pool = pool
    if plain_train is not None:
        plain_pool = ConcatPool([plain_train if s == "train" else parts[s] for s in order])
    start = dict(zip(order, pool.offsets.tolist(), strict=False))

    def span(split: str) -> np.ndarray:
        if split not in parts:
            return np.arange(0, dtype=np.int64)
        return np.arange(start[split], start[split] + len(parts[split]), dtype=np.int64)

    if "reward_val" in parts:
        train_idx, reward_idx = span("train"), span("reward_val")
        if reward_val_size is not None and reward_val_size != len(reward_idx):
            raise ValueError(
                f"reward_val_size={reward_val_size} but the given reward_val has "
                f"{len(reward_idx)} samples (leave reward_val_size out)"
            )
    else:
        size = check_reward_val_size(reward_val_size, len(parts["train"]), name)
        train_idx, reward_idx = carve_reward_val(span("train"), size, seed)
    example, _ = plain_pool.raw(int(train_idx[0]))
    augmented = plain_train is not None
    train = SplitDataset(pool, train_idx, "train", identity, augmented)
    return cls(
        name=name,
        train=train,
        reward_val=SplitDataset(plain_pool, reward_idx, "reward_val", identity, False),
        test=SplitDataset(plain_pool, span("test"), "test", identity, False),
        num_classes=num_classes,
        in_channels=int(example.shape[0]),
        image_size=tuple(int(s) for s in example.shape[1:]),
        mean=(),
        std=(),
        seed=int(seed),
        reward_val_size=len(reward_idx),
        options=MappingProxyType({"source": source}),
        plain_train=(
            SplitDataset(plain_pool, train_idx, "train", identity, False) if augmented else None
        ),
    )
