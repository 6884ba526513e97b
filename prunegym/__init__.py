"""prunegym: reinforcement-learning search for per-layer pruning of PyTorch networks.

The model being compressed is a Gymnasium environment: each step picks one prunable
unit's sparsity and the episode's end scores the whole policy (AMC, He et al. 2018).
"""

import importlib
from types import ModuleType

from prunegym.pruners import (
    ChannelPruner,
    LayerTable,
    PrunableUnit,
    PruningPolicy,
    WeightPruner,
    export_onnx,
    load_pruned,
    measure_latency,
    save_pruned,
)
from prunegym.registration import register_when_gymnasium_loads

# prunegym/ChannelPruning-v0 and WeightPruning-v0, without importing gymnasium here
register_when_gymnasium_loads()

__version__ = "0.1.0"

__all__ = [
    "ChannelPruner",
    "LayerTable",
    "PrunableUnit",
    "PruningPolicy",
    "WeightPruner",
    "__version__",
    "export_onnx",
    "load_pruned",
    "measure_latency",
    "save_pruned",
]


def __getattr__(name: str) -> ModuleType:
    """``prunegym.envs``, ``prunegym.agents``, ... import on first use (PEP 562)."""
    if name in ("agents", "envs", "experiments", "utils"):
        return importlib.import_module(f"prunegym.{name}")  # one of the four names above
    raise AttributeError(f"module 'prunegym' has no attribute {name!r}")
