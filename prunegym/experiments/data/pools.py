"""Sample pools: every dataset's samples behind one global index space.

A pool returns raw samples (before any transform) by global index. ``take`` returns a
whole batch of raw tensors in one indexing operation where the storage allows it (tensors
in memory), and ``None`` where samples must be read one by one (files, user datasets).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ConcatPool", "DatasetPool", "FilePool", "Pool", "TensorPool"]


class Pool(Protocol):
    """What a split reads: ``len``, one raw sample, and optionally a raw batch."""

    def __len__(self) -> int: ...

    def raw(self, i: int) -> tuple[Any, int]: ...

    def take(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None: ...


class TensorPool:
    """All samples in memory: inputs ``(N, ...)`` (uint8 or float) and int64 labels.

    The tensors are kept as given (no copy), so a pool over user tensors costs nothing.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def raw(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def take(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(np.array(indices, dtype=np.int64))  # a writable copy
        return self.images[idx], self.labels[idx].clone()


class FilePool:
    """Image files on disk, read with PIL on access (ImageFolder)."""

    def __init__(self, samples: list[tuple[str, int]]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def raw(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as img:
            return img.convert("RGB"), label

    def take(self, indices: np.ndarray) -> None:
        return None


class DatasetPool:
    """Any map-style ``torch.utils.data.Dataset`` whose items are ``(input, label)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]  # map-style datasets have a length

    def raw(self, i: int) -> tuple[Any, int]:
        x, y = self.dataset[i]
        return x, int(y)

    def take(self, indices: np.ndarray) -> None:
        return None


class ConcatPool:
    """Pools one after another: part ``k`` holds global indices ``[offset_k, offset_k + n_k)``."""

    def __init__(self, parts: list[Pool]) -> None:
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for a pool of {len(self)}")
        part = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return part, i - int(self.offsets[part])

    def raw(self, i: int) -> tuple[Any, int]:
        part, local = self._locate(i)
        return self.parts[part].raw(local)

    def take(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
        indices = np.asarray(indices, dtype=np.int64)
        part_of = np.searchsorted(self.offsets, indices, side="right") - 1
        pieces = []
        for part in np.unique(part_of):
            batch = self.parts[part].take(indices[part_of == part] - self.offsets[part])
            if batch is None:
                return None
            pieces.append((part_of == part, batch))
        if not pieces:
            return None
        if len(pieces) == 1:
            return pieces[0][1]
        x0, y0 = pieces[0][1]
        xs = x0.new_empty((len(indices), *x0.shape[1:]))
        ys = y0.new_empty(len(indices))
        for where, (x, y) in pieces:
            rows = torch.from_numpy(np.flatnonzero(where))
            xs[rows], ys[rows] = x, y
        return xs, ys
