"""The action wall (AMC): bound each unit's sparsity so the budget always stays reachable.

The game (:class:`~prunegym.envs.game.WalledGame`) maps each action onto the rounded
levels the wall allows the unit (from :meth:`ActionWall.allowed_kept` down to the
unit's fewest), so no action asks for more than the wall allows. The wall works on kept
counts *after* rounding, so the budget is met exactly: at step ``t`` unit ``t`` may keep
at most the largest count ``k`` (one of its rounded levels) for which the cost with
units ``< t`` at their chosen counts, unit ``t`` at ``k`` and every later unit at
``max_sparsity`` (rounded) is within the budget. Cost is a non-decreasing step function
of each count, so that count is found by bisection over the unit's levels (at most
``channels / round_to`` of them). The AMC reference clips before rounding to multiples
of 8, which is why most of its episodes end over budget."""

from __future__ import annotations

import numpy as np

from prunegym.envs.targets import Target
from prunegym.pruners.rounding import channel_steps, kept_channels, kept_weights


class UnreachableBudgetError(ValueError):
    """The target cannot be met even with every unit at ``max_sparsity``."""


class ActionWall:
    """Largest kept count per unit that keeps ``target.cost(kept) <= target.budget`` reachable.

    ``channels`` holds each unit's prunable elements (channels, or weights when
    ``granularity`` is ``"weight"``); counts round as the pruners round them: to multiples
    of ``round_to``, or for a unit that feeds or fills a grouped conv with ``G`` groups
    (``channel_groups``, e.g. ``LayerTable.channel_groups``) to the smallest multiple of
    ``G`` that is at least ``round_to``.
    """

    def __init__(
        self,
        channels: np.ndarray,
        granularity: str,
        target: Target,
        min_sparsity: float,
        max_sparsity: float,
        round_to: int,
        channel_groups: np.ndarray | int = 1,
    ) -> None:
        self.channels = np.asarray(channels, dtype=np.int64)
        self.granularity = granularity
        self.target = target
        self.min_sparsity = float(min_sparsity)
        self.max_sparsity = float(max_sparsity)
        self.round_to = 1 if granularity == "weight" else int(round_to)
        n = len(self.channels)
        self.channel_groups = np.broadcast_to(
            np.asarray(channel_groups, dtype=np.int64), (n,)
        ).copy()
        self.steps = (  # round_to, or a multiple of a grouped conv's groups
            np.ones(n, dtype=np.int64)
            if granularity == "weight"
            else channel_steps(self.round_to, self.channel_groups)
        )
        self.kept_min = self.kept(np.full(n, self.max_sparsity))  # fewest each unit can keep
        self.kept_max = self.kept(np.full(n, self.min_sparsity))  # most each unit may keep
        self.floor = float(target.cost(self.kept_min))
        if self.floor > target.budget:
            kind = target.kind
            raise UnreachableBudgetError(
                f"the {kind} target ratio {target.ratio:.4g} is unreachable: with "
                f"max_sparsity={self.max_sparsity:g} on every unit and kept counts rounded up "
                f"to multiples of {self.round_to}, the smallest reachable {kind} ratio is "
                f"{self.floor / target.dense_cost:.4g}"
            )

    # rounding ---------------------------------------------------------------------
    def kept(self, sparsities: np.ndarray) -> np.ndarray:
        """Kept counts of every unit for per-unit ``sparsities`` (the pruners' rounding)."""
        s = np.asarray(sparsities, dtype=np.float64)
        if self.granularity == "weight":
            return kept_weights(self.channels, s)
        return kept_channels(self.channels, s, self.round_to, self.channel_groups)

    def kept_one(self, unit: int, sparsity: float) -> int:
        """Kept count of one unit at ``sparsity``."""
        c = self.channels[unit : unit + 1]
        s = np.array([sparsity], dtype=np.float64)
        if self.granularity == "weight":
            return int(kept_weights(c, s)[0])
        groups = self.channel_groups[unit : unit + 1]
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

    # levels -----------------------------------------------------------------------
    def level(self, unit: int, i: int) -> int:
        """Kept count of the unit's level ``i``: 0 is its fewest (``max_sparsity``), each
        level keeps one step (``steps[unit]``) more, capped at its most (``min_sparsity``)."""
        step = int(self.steps[unit])
        return min(int(self.kept_min[unit]) + i * step, int(self.kept_max[unit]))

    def level_index(self, unit: int, kept: int) -> int:
        """The level ``i`` with :meth:`level` ``(unit, i) == kept`` (a rounded count)."""
        return -(-(int(kept) - int(self.kept_min[unit])) // int(self.steps[unit]))

    def level_count(self, unit: int, allowed_kept: int) -> int:
        """How many levels the unit may take when it may keep at most ``allowed_kept``."""
        return self.level_index(unit, allowed_kept) + 1

    def allowed_kept(self, unit: int, kept: np.ndarray) -> int:
        """The most unit ``unit`` may keep, given ``kept[:unit]`` already decided.

        Later units are assumed to go to ``max_sparsity``; the result is one of the unit's
        rounded levels, between its ``max_sparsity`` and ``min_sparsity`` counts.
        """
        trial = self.kept_min.copy()
        trial[:unit] = kept[:unit]
        trial[unit] = self.kept_max[unit]
        if self.target.within(trial):
            return int(self.kept_max[unit])
        lo = 0  # feasible by the invariant (checked at construction, kept by every step)
        hi = self.level_index(unit, int(self.kept_max[unit]))
        while hi - lo > 1:  # level lo is feasible, level hi is not
            mid = (lo + hi) // 2
            trial[unit] = self.level(unit, mid)
            if self.target.within(trial):
                lo = mid
            else:
                hi = mid
        return self.level(unit, lo)

    def min_sparsity_for(self, unit: int, allowed_kept: int) -> float:
        """The smallest sparsity the wall lets unit ``unit`` take (for observations)."""
        if allowed_kept >= self.kept_one(unit, self.min_sparsity):
            return self.min_sparsity
        return self.sparsity_for_kept(unit, allowed_kept)
