"""Runs people launch: workloads (models, datasets), training, checkpoints and the CLI.

Names are imported on first use, so ``import prunegym.experiments`` stays cheap (no
torchvision, scikit-learn or tqdm until something needs them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prunegym.experiments.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from prunegym.experiments.data import DataSplits, build_data, build_data_like
    from prunegym.experiments.models import build_model, model_names
    from prunegym.experiments.training import (
        EpochStats,
        EvalResult,
        TrainResult,
        evaluate,
        fine_tune,
        train,
    )

_EXPORTS = {
    "build_model": "models",
    "model_names": "models",
    "build_data": "data",
    "build_data_like": "data",
    "DataSplits": "data",
    "train": "training",
    "evaluate": "training",
    "fine_tune": "training",
    "TrainResult": "training",
    "EpochStats": "training",
    "EvalResult": "training",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "Checkpoint": "checkpoint",
}

__all__ = [
    "Checkpoint",
    "DataSplits",
    "EpochStats",
    "EvalResult",
    "TrainResult",
    "build_data",
    "build_data_like",
    "build_model",
    "evaluate",
    "fine_tune",
    "load_checkpoint",
    "model_names",
    "save_checkpoint",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # only this package's own modules: _EXPORTS is a fixed table, never read from a file
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
