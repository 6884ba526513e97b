"""How a sparsity becomes a count of kept channels or weights."""

from __future__ import annotations

import numpy as np

_EPS = 1e-9


def kept_channels(channels: np.ndarray, sparsity: np.ndarray, round_to: int) -> np.ndarray:
    """Channels kept at ``sparsity``, rounded up to a multiple of ``round_to``.

    A unit keeps at least one multiple (or all of its channels when it has fewer),
    never more than it has. Rounding up matches AMC and never prunes more than asked.
    """
    channels = np.asarray(channels, dtype=np.int64)
    sparsity = np.asarray(sparsity, dtype=np.float64)
    step = max(int(round_to), 1)
    kept = np.ceil(channels * (1.0 - sparsity) / step - _EPS).astype(np.int64) * step
    return np.clip(kept, np.minimum(step, channels), channels)


def kept_weights(numel: np.ndarray, sparsity: np.ndarray) -> np.ndarray:
    """Weights kept at ``sparsity``: ``floor(sparsity * numel)`` of them are zeroed."""
    numel = np.asarray(numel, dtype=np.int64)
    removed = np.floor(np.asarray(sparsity, dtype=np.float64) * numel + _EPS).astype(np.int64)
    return numel - np.minimum(removed, numel - 1)
