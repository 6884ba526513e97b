"""Model surgery and cost: what a model can lose, and what it costs. Imports no gymnasium."""

from prunegym.pruners.channel import ChannelPruner
from prunegym.pruners.errors import PruningError, UnsupportedModelError
from prunegym.pruners.importance import IMPORTANCES
from prunegym.pruners.io import export_onnx, load_pruned, onnx_max_abs_diff, save_pruned
from prunegym.pruners.latency import Latency, measure_latency
from prunegym.pruners.policy import PruningPolicy
from prunegym.pruners.reconstruction import Reconstructor
from prunegym.pruners.table import Cost, LayerTable, count_cost
from prunegym.pruners.units import LayerInfo, Member, PrunableUnit
from prunegym.pruners.weight import WeightPruner, count_nonzero_cost

__all__ = [
    "IMPORTANCES",
    "ChannelPruner",
    "Cost",
    "Latency",
    "LayerInfo",
    "LayerTable",
    "Member",
    "PrunableUnit",
    "PruningError",
    "PruningPolicy",
    "Reconstructor",
    "UnsupportedModelError",
    "WeightPruner",
    "count_cost",
    "count_nonzero_cost",
    "export_onnx",
    "load_pruned",
    "measure_latency",
    "onnx_max_abs_diff",
    "save_pruned",
]
