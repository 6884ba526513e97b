"""Sample pools: every dataset's samples behind one global index space.

A pool returns raw samples (before any transform) by global index. ``take`` returns a
whole batch of raw tensors in one indexing operation where the storage allows it (tensors
in memory), and ``None`` where samples must be read one by one (files, user datasets).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

__all__ = ["FilePool", "Pool", "TensorPool"]


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
