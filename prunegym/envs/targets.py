"""What an episode must fit in: the target metric, its dense value and the budget.

A registry chosen by name (``macs``, ``params``, ``latency``). Each builds a
:class:`Target`: a cost function of the kept counts (one per unit, after rounding), the
dense model's cost and the budget ``ratio * dense``. MACs and params are integers and
their budget is ``floor(ratio * dense)`` in exact rational arithmetic, so an episode
meets it with no tolerance; latency is a lookup estimate in milliseconds
(:class:`~prunegym.envs.latency_table.LatencyTable`, measured once on this device).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from prunegym.envs.latency_table import LatencyTable
from prunegym.pruners import LayerTable

CostFn = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Target:
    """An episode's budget: ``cost(kept) <= budget``, with ``budget = ratio * dense_cost``.

    ``cost`` must be non-decreasing in every kept count (the action wall relies on it).
    """

    kind: str
    ratio: float
    dense_cost: float
    budget: float
    cost: CostFn
    latency_table: LatencyTable | None = None

    def cost_ratio(self, kept: np.ndarray) -> float:
        """The cost of ``kept`` over the dense cost."""
        return float(self.cost(kept)) / self.dense_cost

    def within(self, kept: np.ndarray) -> bool:
        """Whether ``kept`` meets the budget exactly."""
        return float(self.cost(kept)) <= self.budget


@dataclass(frozen=True)
class TargetContext:
    """What a target may need: the unit table, the private model, an input for timing."""

    table: LayerTable
    model: nn.Module
    latency_input: torch.Tensor
    latency_options: Mapping[str, Any] = field(default_factory=dict)


TargetBuilder = Callable[[float, TargetContext], Target]


def _counted(kind: str) -> TargetBuilder:
    """A target counted by the table's cost model (``macs`` or ``params``)."""

    def build(ratio: float, ctx: TargetContext) -> Target:
        table = ctx.table
        dense = int(getattr(table.total, kind))
        budget = math.floor(Fraction(ratio) * dense)
        return Target(kind, ratio, float(dense), float(budget),
                      lambda kept: getattr(table.cost_of_kept(kept), kind))  # fmt: skip

    return build


def _latency(ratio: float, ctx: TargetContext) -> Target:
    if ctx.table.granularity != "channel":
        raise ValueError("a latency target needs channel pruning: unstructured sparsity "
                         "does not make dense kernels faster")  # fmt: skip
    lt = LatencyTable(ctx.model, ctx.table, ctx.latency_input, **dict(ctx.latency_options))
    return Target("latency", ratio, lt.dense_ms, ratio * lt.dense_ms, lt.estimate, lt)


TARGETS: Mapping[str, TargetBuilder] = MappingProxyType(
    {"macs": _counted("macs"), "params": _counted("params"), "latency": _latency}
)
"""name -> builder ``(ratio, TargetContext) -> Target``."""


def check_target(kind: str, ratio: Any) -> float:
    """``ratio`` as a float in (0, 1] for a known ``kind``; a ValueError otherwise."""
    if kind not in TARGETS:
        raise ValueError(f"unknown target {kind!r}; known: {', '.join(TARGETS)}")
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise ValueError(f"the target ratio must be a number in (0, 1], got {ratio!r}")
    value = float(ratio)
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"the target ratio must be in (0, 1], got {ratio!r}")
    return value


def make_target(kind: str, ratio: float, ctx: TargetContext) -> Target:
    """The target ``kind`` at ``ratio`` of the dense cost."""
    return TARGETS[kind](check_target(kind, ratio), ctx)
