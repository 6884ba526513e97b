"""prunegym: reinforcement-learning search for per-layer pruning of PyTorch networks.

The model being compressed is a Gymnasium environment: each step picks one prunable
unit's sparsity and the episode's end scores the whole policy (AMC, He et al. 2018).
"""

import prunegym.envs  # noqa: F401  (registers prunegym/ChannelPruning-v0 and WeightPruning-v0)
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
