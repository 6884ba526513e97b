"""The rules every pruning env plays by: the action wall, action -> level, the steps.

:class:`WalledGame` is the one copy of the game's arithmetic. At each step the
:class:`ActionWall` says the most the unit may keep (so the budget stays reachable);
the unit may take any of its rounded levels from that down to its fewest (its count at
``max_sparsity``). The action in [-1, 1] picks one of those levels: the action range is
cut into as many equal bins as there are levels, -1 keeping the most the wall allows
and +1 the fewest (``ACTION_MAPPING``). No action is clipped, every action bin is a
different network, and every episode ends inside the budget exactly (the wall works on
the rounded counts). A unit the wall leaves a single level is applied without a step
(its action could change nothing), so an episode has at most one step per unit; if
every unit has a single level, the last one still gets a step. Every step reports a
:class:`~prunegym.envs.contract.StepInfo`. A subclass says what is observed and how the
finished policy is scored; it implements :class:`~prunegym.envs.contract.PruningGame`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from prunegym.envs.contract import ResetInfo, StepInfo, TerminalInfo
from prunegym.envs.spec import shared_spec
from prunegym.envs.targets import Target
from prunegym.envs.wall import ActionWall

#: The name of the action -> sparsity mapping (see the module docstring).
ACTION_MAPPING = "wall-levels"


def check_bounds(lo: Any, hi: Any) -> tuple[float, float]:
    """``(min_sparsity, max_sparsity)`` as floats with ``0 <= lo <= hi < 1``."""
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"min/max sparsity must be numbers, got {lo!r}, {hi!r}") from None
    if not (0.0 <= lo <= hi < 1.0):
        raise ValueError(
            f"need 0 <= min_sparsity <= max_sparsity < 1, got min_sparsity={lo}, max_sparsity={hi}"
        )
    return lo, hi


def _unit_action(action: Any) -> float:
    """``action`` as a float in [-1, 1]; a ValueError for anything but one finite value."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.size != 1:
        raise ValueError(f"the action must hold one value, got shape {np.shape(action)}")
    if not np.isfinite(a[0]):
        raise ValueError(f"the action must be finite, got {a[0]}")
    return float(np.clip(a[0], -1.0, 1.0))


class WalledGame(gym.Env[np.ndarray, np.ndarray]):
    """Base of the pruning envs: at most one step per unit, actions on the wall's levels.

    Subclasses call :meth:`_start_game` once the wall is built and implement
    :meth:`_observe` and :meth:`_finish`.
    """

    metadata: dict[str, Any] = {"render_modes": []}
    _spec: EnvSpec | None = None
    wall: ActionWall
    target: Target
    min_sparsity: float
    max_sparsity: float

    def _start_game(self, names: Sequence[str], wall: ActionWall) -> None:
        self._names = [str(n) for n in names]
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.wall = wall
        self.target = wall.target
        self.min_sparsity, self.max_sparsity = wall.min_sparsity, wall.max_sparsity
        self._t: int | None = None

    @property  # type: ignore[override]  # gym.Env declares a plain attribute
    def spec(self) -> EnvSpec | None:
        """The spec ``gym.make`` set; its deep copies share the caller's model and data."""
        return self._spec

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        self._spec = shared_spec(value)

    # the contract (prunegym.envs.contract.PruningGame) -------------------------------
    @property
    def action_mapping(self) -> str:
        """The action -> sparsity rule, versioned: a saved agent records it."""
        return ACTION_MAPPING  # [-1, 1] cut into equal bins, one per level the wall allows

    @property
    def n_units(self) -> int:
        """Units of a policy (an episode has at most one step per unit)."""
        return len(self._names)

    @property
    def unit_names(self) -> list[str]:
        """The units in execution order."""
        return list(self._names)

    @property
    def target_ratio(self) -> float:
        """The budget: the fraction of the dense target metric the result may keep."""
        return self.target.ratio

    @property
    def levels(self) -> int:
        """How many rounded levels the wall allows the unit to decide now (0 outside an
        episode)."""
        t = self.step_index
        if self._t is None or t >= self.n_units:
            return 0
        return self.wall.level_count(t, self._allowed)

    def sparsity_for_action(self, action: Any) -> float:
        """Where ``action`` points in the interval the wall allows the current unit,
        ``[min_allowed, max_sparsity]``, before it is mapped to one of the unit's levels."""
        u = (_unit_action(action) + 1.0) / 2.0
        lo = self.min_allowed_sparsity()
        return lo + u * (self.max_sparsity - lo)

    def action_for_sparsity(self, sparsity: float) -> float:
        """The action (a float32 value) that gives the current unit the rounded count of
        ``sparsity`` (clipped to ``[min_sparsity, max_sparsity]``), or the most the wall
        allows when that is fewer: the centre of that level's action bin."""
        t = self._current_unit()
        s = min(max(float(sparsity), self.min_sparsity), self.max_sparsity)
        kept = min(self.wall.kept_one(t, s), self._allowed)
        n = self.levels
        j = self.wall.level_index(t, self._allowed) - self.wall.level_index(t, kept)
        a = np.float32(2.0 * (j + 0.5) / n - 1.0)
        for direction in (np.float32(1.0), np.float32(-1.0)):  # float32 may miss the bin
            b = a
            for _ in range(64):
                if self._level_of(b, n) == j:
                    return float(b)
                b = np.nextafter(b, direction, dtype=np.float32)
        raise RuntimeError(f"no float32 action reaches level {j} of {n} (internal)")

    def cost_ratio(self, sparsities: Any) -> float:
        """The target metric of ``sparsities`` (one per unit, after rounding) over dense.

        No wall is applied; :meth:`play` applies exactly these counts when
        :meth:`within_budget` holds for them.
        """
        return self.target.cost_ratio(self._kept_of(sparsities))

    def within_budget(self, sparsities: Any) -> bool:
        """Whether ``sparsities`` (one per unit, after rounding) meet the budget exactly."""
        return self.target.within(self._kept_of(sparsities))

    def _kept_of(self, sparsities: Any) -> np.ndarray:
        s = np.asarray(sparsities, dtype=np.float64).reshape(-1)
        if s.size != self.n_units:
            raise ValueError(f"expected {self.n_units} sparsities (one per unit), got {s.size}")
        return self.wall.kept(s)

    def play(
        self, sparsities: Sequence[float], seed: int | None = None
    ) -> tuple[float, TerminalInfo]:
        """Run one whole episode asking for ``sparsities`` (one per unit): (reward, info).

        Each decided unit gets the rounded count of its sparsity, or the most the wall
        allows when that is fewer; a unit with a single level gets that level.
        """
        if len(sparsities) != self.n_units:
            raise ValueError(
                f"expected {self.n_units} sparsities (one per unit), got {len(sparsities)}"
            )
        self.reset(seed=seed)
        while True:
            action = self.action_for_sparsity(sparsities[self._current_unit()])
            _, reward, terminated, _, info = self.step(np.array([action], dtype=np.float32))
            if terminated:
                return float(reward), cast(TerminalInfo, info)

    # gymnasium API ------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._episode_start = time.perf_counter()
        self._step_seconds = 0.0
        self._kept = self.wall.channels.copy()  # undecided units count as dense
        self._requested = np.zeros(self.n_units)
        self._sparsity = np.zeros(self.n_units)
        self._skipped: list[int] = []
        skipped = self._advance(0, at_reset=True)
        t = self._current_unit()
        info: ResetInfo = {"unit": self._names[t], "index": t, "n_units": self.n_units,
                           "levels": self.levels, "skipped": skipped}  # fmt: skip
        return self._observe(), dict(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        start = time.perf_counter()
        if self._t is None or self._t >= self.n_units:
            raise RuntimeError("the episode is over (or never started); call reset() first")
        a = _unit_action(action)
        t, n = self._t, self.levels
        requested = self.sparsity_for_action(a)
        j = self._level_of(a, n)
        kept = self.wall.level(t, self.wall.level_index(t, self._allowed) - j)
        self._apply(t, kept, requested)
        skipped = self._advance(t + 1, at_reset=False)
        info: StepInfo = {
            "unit": self._names[t], "index": t, "requested_sparsity": requested,
            "sparsity": float(self._sparsity[t]), "kept": kept, "levels": n,
            "skipped": skipped, "next_index": self.step_index,
        }  # fmt: skip
        self._step_seconds += time.perf_counter() - start
        if self.step_index < self.n_units:
            return self._observe(), 0.0, False, False, dict(info)
        reward, final = self._finish()
        final = {**final, "skipped_units": list(self._skipped)}
        return self._observe(), reward, True, False, {**info, **final}

    # the steps ------------------------------------------------------------------------
    @staticmethod
    def _level_of(action: Any, levels: int) -> int:
        """The action's bin: 0 (the most the wall allows) to ``levels - 1`` (the fewest)."""
        u = (float(action) + 1.0) / 2.0
        return min(int(u * levels), levels - 1)

    def _apply(self, t: int, kept: int, requested: float) -> None:
        self._kept[t] = kept
        self._sparsity[t] = self.wall.sparsity_for_kept(t, kept)
        self._requested[t] = requested

    def _advance(self, t: int, at_reset: bool) -> list[int]:
        """Move to the next unit from ``t`` that has a choice, applying the single-level
        units on the way (at reset, the last unit is never skipped: an episode has at
        least one step). Returns the skipped units."""
        skipped = []
        while t < self.n_units:
            self._t = t
            self._allowed = self.wall.allowed_kept(t, self._kept)
            if self.levels > 1 or (at_reset and t == self.n_units - 1):
                break
            sparsity = self.wall.sparsity_for_kept(t, self._allowed)
            self._apply(t, self._allowed, sparsity)
            skipped.append(t)
            t += 1
        self._t = t
        self._skipped.extend(skipped)
        return skipped

    # for subclasses -----------------------------------------------------------------
    @property
    def step_index(self) -> int:
        """The unit to decide next (``n_units`` once the episode is over)."""
        return 0 if self._t is None else self._t

    def _current_unit(self) -> int:
        if self._t is None or self._t >= self.n_units:
            raise RuntimeError("no unit to decide: the episode is over (or never started)")
        return self._t

    def min_allowed_sparsity(self) -> float:
        """The smallest sparsity the wall lets the next unit take (0 after the last)."""
        t = self.step_index
        if self._t is None or t >= self.n_units:
            return 0.0
        return self.wall.min_sparsity_for(t, self._allowed)

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def _finish(self) -> tuple[float, dict[str, Any]]:
        """Score the finished episode: (reward, the terminal info's keys beyond the step's)."""
        raise NotImplementedError


def check_round_to(granularity: str, target: str, round_to: int | None) -> int:
    """The rounding multiple of kept counts: 1 for weight pruning, 8 by default."""
    if granularity == "weight":
        if round_to not in (None, 1):
            raise ValueError(f"weight pruning does not round; round_to must be 1, got {round_to}")
        if target == "latency":
            raise ValueError("a latency target needs channel pruning: unstructured sparsity "
                             "does not make dense kernels faster")  # fmt: skip
        return 1
    if round_to is None:
        return 8
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be a positive integer, got {round_to!r}")
    return round_to
