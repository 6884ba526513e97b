"""The action wall (AMC): clip each unit's sparsity so the budget always stays reachable.

The wall works on kept counts *after* rounding, so the budget is met exactly: at step
``t`` unit ``t`` may keep at most the largest count ``k`` (one of its rounded levels) for
which the cost with units ``< t`` at their chosen counts, unit ``t`` at ``k`` and every
later unit at ``max_sparsity`` (rounded) is within the budget. Cost is a non-decreasing
step function of each count, so that count is found by bisection over the unit's levels
(at most ``channels / round_to`` of them). The AMC reference clips before rounding to
multiples of 8, which is why most of its episodes end over budget.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from prunegym.pruners import LayerTable
from prunegym.pruners.rounding import kept_channels, kept_weights

CostFn = Callable[[np.ndarray], float]


class UnreachableBudgetError(ValueError):
    """The target cannot be met even with every unit at ``max_sparsity``."""


class ActionWall:
    """Largest kept count per unit that keeps ``cost_fn(kept) <= budget`` reachable.

    ``cost_fn`` maps a vector of kept counts (one per unit) to the target metric and must
    be non-decreasing in every count; ``budget`` is in the same unit as ``cost_fn``.
    """

    def __init__(
        self,
        table: LayerTable,
        cost_fn: CostFn,
        budget: float,
        dense_cost: float,
        min_sparsity: float,
        max_sparsity: float,
        round_to: int,
        target: str = "macs",
    ) -> None:
        self.table = table
        self.cost_fn = cost_fn
        self.budget = budget
        self.dense_cost = dense_cost
        self.min_sparsity = float(min_sparsity)
        self.max_sparsity = float(max_sparsity)
        self.round_to = 1 if table.granularity == "weight" else int(round_to)
        self.channels = table.channels
        self.steps = table.steps(self.round_to)  # round_to, or a multiple of a conv's groups
        n = len(table)
        self.kept_min = self.kept(np.full(n, self.max_sparsity))  # fewest each unit can keep
        self.kept_max = self.kept(np.full(n, self.min_sparsity))  # most each unit may keep
        self.floor = float(cost_fn(self.kept_min))
        if self.floor > budget:
            smallest = self.floor / dense_cost
            raise UnreachableBudgetError(
                f"the {target} target ratio {budget / dense_cost:.4g} is unreachable: with "
                f"max_sparsity={self.max_sparsity:g} on every unit and kept counts rounded up "
                f"to multiples of {self.round_to}, the smallest reachable {target} ratio is "
                f"{smallest:.4g}"
            )

    # rounding ---------------------------------------------------------------------
    def kept(self, sparsities: np.ndarray) -> np.ndarray:
        """Kept counts of every unit for per-unit ``sparsities`` (the pruners' rounding)."""
        return self.table.kept_counts(np.asarray(sparsities, dtype=np.float64), self.round_to)

    def kept_one(self, unit: int, sparsity: float) -> int:
        """Kept count of one unit at ``sparsity``."""
        c = self.channels[unit : unit + 1]
        s = np.array([sparsity], dtype=np.float64)
        if self.table.granularity == "weight":
            return int(kept_weights(c, s)[0])
        groups = self.table.channel_groups[unit : unit + 1]
        return int(kept_channels(c, s, self.round_to, groups)[0])

    def sparsity_for_kept(self, unit: int, kept: int) -> float:
        """A sparsity in ``[min_sparsity, max_sparsity]`` whose rounded count is ``kept``."""
        c = int(self.channels[unit])
        s = min(max(1.0 - kept / c, self.min_sparsity), self.max_sparsity)
        if self.kept_one(unit, s) != kept:
            for candidate in (np.nextafter(s, 1.0), np.nextafter(s, 0.0), s + 1e-9, s - 1e-9):
                inside = self.min_sparsity <= candidate <= self.max_sparsity
                if inside and self.kept_one(unit, float(candidate)) == kept:
                    return float(candidate)
            raise RuntimeError(f"no sparsity of unit {unit} keeps exactly {kept} (internal)")
        return float(s)

    # the wall ---------------------------------------------------------------------
    def _level(self, unit: int, j: int) -> int:
        return min(int(self.kept_min[unit]) + j * int(self.steps[unit]), int(self.kept_max[unit]))

    def allowed_kept(self, unit: int, kept: np.ndarray) -> int:
        """The most unit ``unit`` may keep, given ``kept[:unit]`` already decided.

        Later units are assumed to go to ``max_sparsity``; the result is one of the unit's
        rounded levels, between its ``max_sparsity`` and ``min_sparsity`` counts.
        """
        trial = self.kept_min.copy()
        trial[:unit] = kept[:unit]
        trial[unit] = self.kept_max[unit]
        if self.cost_fn(trial) <= self.budget:
            return int(self.kept_max[unit])
        lo = 0  # feasible by the invariant (checked at construction, kept by every step)
        hi = -(-(int(self.kept_max[unit]) - int(self.kept_min[unit])) // int(self.steps[unit]))
        while hi - lo > 1:  # level lo is feasible, level hi is not
            mid = (lo + hi) // 2
            trial[unit] = self._level(unit, mid)
            if self.cost_fn(trial) <= self.budget:
                lo = mid
            else:
                hi = mid
        return self._level(unit, lo)

    def clip(self, unit: int, sparsity: float, allowed_kept: int) -> tuple[float, int]:
        """The walled ``(sparsity, kept)`` of a unit asked for ``sparsity``."""
        sparsity = min(max(float(sparsity), self.min_sparsity), self.max_sparsity)
        kept = self.kept_one(unit, sparsity)
        if kept <= allowed_kept:
            return sparsity, kept
        return self.sparsity_for_kept(unit, allowed_kept), allowed_kept

    def min_sparsity_for(self, unit: int, allowed_kept: int) -> float:
        """The smallest sparsity the wall lets unit ``unit`` take (for observations)."""
        if allowed_kept >= self.kept_one(unit, self.min_sparsity):
            return self.min_sparsity
        return self.sparsity_for_kept(unit, allowed_kept)
