"""How a sparsity becomes a count of kept channels or weights."""

from __future__ import annotations

import numpy as np

_EPS = 1e-9


def channel_steps(round_to: int, channel_groups: np.ndarray | int = 1) -> np.ndarray:
    """The multiple each unit's kept channels round to.

    ``round_to`` for an ordinary unit. A unit that feeds or fills a grouped conv with
    ``G`` groups keeps the same channels in every group, so its count is a multiple of
    ``G``: the smallest multiple of ``G`` that is at least ``round_to``.
    """
    groups = np.maximum(np.asarray(channel_groups, dtype=np.int64), 1)
    step = max(int(round_to), 1)
    return groups * -(-step // groups)


def kept_channels(
    channels: np.ndarray,
    sparsity: np.ndarray,
    round_to: int,
    channel_groups: np.ndarray | int = 1,
) -> np.ndarray:
    """Channels kept at ``sparsity``, rounded up to a multiple of the unit's step.

    The step is ``round_to`` (see :func:`channel_steps` for grouped units). A unit keeps
    at least one step (or all of its channels when it has fewer), never more than it
    has. Rounding up matches AMC and never prunes more than asked.
    """
    channels = np.asarray(channels, dtype=np.int64)
    sparsity = np.asarray(sparsity, dtype=np.float64)
    step = channel_steps(round_to, channel_groups)
    kept = np.ceil(channels * (1.0 - sparsity) / step - _EPS).astype(np.int64) * step
    return np.clip(kept, np.minimum(step, channels), channels)


def kept_weights(numel: np.ndarray, sparsity: np.ndarray) -> np.ndarray:
    """Weights kept at ``sparsity``: ``floor(sparsity * numel)`` of them are zeroed."""
    numel = np.asarray(numel, dtype=np.int64)
    removed = np.floor(np.asarray(sparsity, dtype=np.float64) * numel + _EPS).astype(np.int64)
    return numel - np.minimum(removed, numel - 1)
