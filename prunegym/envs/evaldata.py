"""The evaluator's data: the reward split as a Dataset, its fixed subset, calibration batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

Batch = tuple[torch.Tensor, torch.Tensor | None]


def as_dataset(data: Any) -> Any:
    """``data`` as a Dataset of ``(image, label)`` (tensors ``(x, y)`` become a TensorDataset)."""
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        x, y = data
        if len(x) != len(y):
            raise ValueError(
                f"reward_val tensors differ in length: {len(x)} inputs, {len(y)} labels"
            )
        return TensorDataset(x, y.long())
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise ValueError(
            f"reward_val must be a Dataset or a tuple of tensors (x, y), got {type(data).__name__}"
        )
    return data


def reward_val_slices(
    n: int, subset_size: int | None, heldout_size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sorted slices of ``range(n)`` drawn once with ``seed``: the search
    slice (``subset_size`` samples, default all the rest) and the held-out slice
    (``heldout_size`` samples, default a fifth; 0 for none), both of the reward split."""
    for label, value in (("subset_size", subset_size), ("heldout_size", heldout_size)):
        low = 1 if label == "subset_size" else 0
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):  # fmt: skip
            raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
    held = n // 5 if heldout_size is None else min(int(heldout_size), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    rest = order[held:]
    search = rest if subset_size is None else rest[:subset_size]
    return np.sort(search), np.sort(order[:held])


def materialize(dataset: Any, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples at ``indices`` stacked into ``(x, y)`` tensors."""
    if isinstance(dataset, TensorDataset):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return dataset.tensors[0][idx], dataset.tensors[1][idx]
    xs, ys = [], []
    for i in indices:
        x, y = dataset[int(i)]
        xs.append(torch.as_tensor(x))
        ys.append(int(y))
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long)


def calibration_batches(
    source: Any, n_batches: int, batch_size: int, seed: int, device: torch.device
) -> tuple[list[Batch], np.ndarray | None]:
    """Up to ``n_batches`` batches ``(x, y or None)`` from ``source``, on ``device``.

    A Dataset is sampled once with ``seed`` (the drawn indices are returned too);
    tensors ``(x, y)``, a tensor of inputs or a sequence of batches are used in order.
    """
    if source is None:
        return [], None
    if (
        isinstance(source, (tuple, list))
        and len(source) == 2
        and all(isinstance(t, torch.Tensor) for t in source)
        and source[1].dim() == 1
        and len(source[0]) == len(source[1])
        and not source[1].is_floating_point()
    ):
        x, y = source
        pairs = zip(torch.split(x, batch_size), torch.split(y, batch_size), strict=True)
        batches: list[Batch] = [(xb.to(device), yb.to(device)) for xb, yb in pairs]
        return batches[:n_batches], None
    if isinstance(source, torch.Tensor):
        chunks = list(torch.split(source, batch_size))[:n_batches]
        return [(c.to(device), None) for c in chunks], None
    if isinstance(source, Sequence) and not hasattr(source, "indices"):
        out: list[Batch] = []
        for item in list(source)[:n_batches]:
            if isinstance(item, torch.Tensor):
                out.append((item.to(device), None))
            else:
                x, y = item
                out.append((x.to(device), torch.as_tensor(y).to(device)))
        return out, None
    dataset = as_dataset(source)
    n = min(len(dataset), n_batches * batch_size)
    if n < 1:
        return [], None
    order = np.random.default_rng(seed + 1).permutation(len(dataset))[:n]
    x, y = materialize(dataset, order)
    drawn: list[Batch] = [
        (xb.to(device), yb.to(device))
        for xb, yb in zip(torch.split(x, batch_size), torch.split(y, batch_size), strict=True)
    ]
    return drawn, order
