"""The rules every pruning env plays by: action -> sparsity, the action wall, the steps.

:class:`WalledGame` is the one copy of the game's arithmetic: an action in [-1, 1] maps
linearly to a sparsity in ``[min_sparsity, max_sparsity]``, the :class:`ActionWall`
clips it so the budget stays reachable, and every step reports a
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


class WalledGame(gym.Env[np.ndarray, np.ndarray]):
    """Base of the pruning envs: one step per unit, actions through the action wall.

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
    def n_units(self) -> int:
        """Episode length: one step per unit."""
        return len(self._names)

    @property
    def unit_names(self) -> list[str]:
        """The units in execution order."""
        return list(self._names)

    @property
    def target_ratio(self) -> float:
        """The budget: the fraction of the dense target metric the result may keep."""
        return self.target.ratio

    def sparsity_for_action(self, action: Any) -> float:
        """The sparsity (before the wall) that ``action`` in [-1, 1] asks for (clipped)."""
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        return self.min_sparsity + (a + 1.0) / 2.0 * (self.max_sparsity - self.min_sparsity)

    def action_for_sparsity(self, sparsity: float, unit: int | None = None) -> float:
        """The action (a float32 value) that asks for ``sparsity`` (clipped to the bounds).

        With ``unit``, the action is nudged so that it yields exactly the kept count
        ``sparsity`` yields for that unit (rounding boundaries survive float32).
        """
        span = self.max_sparsity - self.min_sparsity
        s = min(max(float(sparsity), self.min_sparsity), self.max_sparsity)
        a = np.float32(-1.0 if span == 0 else np.clip(2.0 * (s - self.min_sparsity) / span - 1.0,
                                                       -1.0, 1.0))  # fmt: skip
        if unit is not None:
            want = self.wall.kept_one(unit, s)
            for direction in (np.float32(1.0), np.float32(-1.0)):
                b = a
                for _ in range(64):
                    if self.wall.kept_one(unit, self.sparsity_for_action(b)) == want:
                        return float(b)
                    b = np.nextafter(b, direction, dtype=np.float32)
        return float(a)

    def cost_ratio(self, sparsities: Any) -> float:
        """The target metric of ``sparsities`` (one per unit, after rounding) over dense.

        No wall is applied; an episode asking for these sparsities ends unclipped when
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
        """Run one whole episode asking for ``sparsities`` (one per unit): (reward, info)."""
        if len(sparsities) != self.n_units:
            raise ValueError(
                f"expected {self.n_units} sparsities (one per unit), got {len(sparsities)}"
            )
        self.reset(seed=seed)
        reward, info = 0.0, cast(dict[str, Any], {})
        for t, s in enumerate(sparsities):
            action = np.array([self.action_for_sparsity(s, t)], dtype=np.float32)
            _, reward, _, _, info = self.step(action)
        return float(reward), cast(TerminalInfo, info)  # the last step's info is terminal

    # gymnasium API ------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._episode_start = time.perf_counter()
        self._step_seconds = 0.0
        self._t = 0
        self._kept = self.wall.channels.copy()  # undecided units count as dense
        self._requested = np.zeros(self.n_units)
        self._sparsity = np.zeros(self.n_units)
        self._allowed = self.wall.allowed_kept(0, self._kept)
        info: ResetInfo = {"unit": self._names[0], "index": 0, "n_units": self.n_units}
        return self._observe(), dict(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        start = time.perf_counter()
        if self._t is None or self._t >= self.n_units:
            raise RuntimeError("the episode is over (or never started); call reset() first")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != 1:
            raise ValueError(f"the action must hold one value, got shape {np.shape(action)}")
        if not np.isfinite(a[0]):
            raise ValueError(f"the action must be finite, got {a[0]}")
        t = self._t
        requested = self.sparsity_for_action(a)
        sparsity, kept = self.wall.clip(t, requested, self._allowed)
        asked = self.wall.kept_one(t, requested)
        self._requested[t], self._sparsity[t], self._kept[t] = requested, sparsity, kept
        self._t = t + 1
        info: StepInfo = {
            "unit": self._names[t], "index": t, "requested_sparsity": requested,
            "sparsity": sparsity, "kept": kept, "clipped": kept < asked,
        }  # fmt: skip
        if self._t < self.n_units:
            self._allowed = self.wall.allowed_kept(self._t, self._kept)
            obs = self._observe()
            self._step_seconds += time.perf_counter() - start
            return obs, 0.0, False, False, dict(info)
        self._step_seconds += time.perf_counter() - start
        reward, final = self._finish()
        return self._observe(), reward, True, False, {**info, **final}

    # for subclasses -----------------------------------------------------------------
    @property
    def step_index(self) -> int:
        """The unit to decide next (``n_units`` once the episode is over)."""
        return 0 if self._t is None else self._t

    def min_allowed_sparsity(self) -> float:
        """The smallest sparsity the wall lets the next unit take (0 after the last)."""
        t = self.step_index
        return self.wall.min_sparsity_for(t, self._allowed) if t < self.n_units else 0.0

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def _finish(self) -> tuple[float, dict[str, Any]]:
        """Score the finished episode: (reward, the terminal info's keys beyond the step's)."""
        raise NotImplementedError
