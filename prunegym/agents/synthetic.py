"""A pruning game whose best policy is known: for testing that agents really learn.

``SyntheticPruningEnv`` plays the same game as the real environment (one step per
unit, ``Box(-1, 1, (1,))`` actions mapped to ``[min_sparsity, max_sparsity]``, an
AMC-style observation in ``[0, 1]``, and a hard MACs action wall) on an imaginary
network: unit ``i`` costs ``macs[i] * (1 - s_i)`` and the "accuracy" of a policy is
``base_accuracy - sum_i sensitivity[i] * s_i**2`` (the reward is that times
``reward_scale``; AMC's rewards are a few units in size). The optimum of that convex problem
under the budget is computed exactly by :meth:`optimum`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from prunegym.pruners import PruningPolicy

OBS_SIZE = 8


class SyntheticPruningEnv(gym.Env):
    """A known-optimum stand-in for the pruning environment (no model, no data)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        num_units: int = 8,
        ratio: float = 0.5,
        min_sparsity: float = 0.0,
        max_sparsity: float = 0.8,
        fixed_share: float = 0.05,
        base_accuracy: float = 0.95,
        reward_scale: float = 1.0,
        problem_seed: int = 0,
        macs: Any = None,
        sensitivity: Any = None,
    ) -> None:
        super().__init__()
        rng = np.random.default_rng(problem_seed)
        self.num_units = int(num_units)
        self.macs = np.asarray(
            macs if macs is not None else rng.uniform(0.5, 2.0, self.num_units), dtype=np.float64
        )
        sens = np.asarray(
            sensitivity if sensitivity is not None else rng.uniform(0.05, 1.0, self.num_units),
            dtype=np.float64,
        )
        self.sensitivity = 0.5 * sens / sens.sum()
        self.unit_names = [f"unit{i}" for i in range(self.num_units)]
        self.min_sparsity, self.max_sparsity = float(min_sparsity), float(max_sparsity)
        self.target_ratio = float(ratio)
        self.base_accuracy = float(base_accuracy)
        self.reward_scale = float(reward_scale)
        prunable = self.macs.sum()
        self.fixed = fixed_share / (1 - fixed_share) * prunable
        self.total = prunable + self.fixed
        if self.cost_ratio(np.full(self.num_units, self.max_sparsity)) > self.target_ratio + 1e-12:
            raise ValueError(f"budget {ratio} is unreachable with max_sparsity {max_sparsity}")
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (OBS_SIZE,), np.float32)
        self._t = 0
        self._s = np.zeros(self.num_units)

    # the game's arithmetic ---------------------------------------------------------
    @property
    def n_units(self) -> int:
        return self.num_units

    def sparsity_for_action(self, action: Any) -> float:
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        return self.min_sparsity + (a + 1.0) / 2.0 * (self.max_sparsity - self.min_sparsity)

    def action_for_sparsity(self, sparsity: float, unit: int | None = None) -> np.ndarray:
        span = self.max_sparsity - self.min_sparsity
        a = np.clip(2.0 * (sparsity - self.min_sparsity) / span - 1.0, -1.0, 1.0)
        return np.array([a], dtype=np.float32)

    def cost_ratio(self, sparsities: Any) -> float:
        s = np.asarray(sparsities, dtype=np.float64)
        return float((self.fixed + (self.macs * (1 - s)).sum()) / self.total)

    def accuracy(self, sparsities: Any) -> float:
        s = np.asarray(sparsities, dtype=np.float64)
        return float(self.base_accuracy - (self.sensitivity * s**2).sum())

    def optimum(self) -> tuple[np.ndarray, float]:
        """The best sparsities under the budget and their accuracy (KKT + bisection)."""
        need = self.macs.sum() + self.fixed - self.target_ratio * self.total  # sum c_i s_i
        lo, hi = 0.0, 1e6
        for _ in range(200):
            lam = (lo + hi) / 2
            s = np.clip(lam * self.macs / (2 * self.sensitivity), self.min_sparsity,
                        self.max_sparsity)  # fmt: skip
            lo, hi = (lam, hi) if (self.macs * s).sum() < need else (lo, lam)
        s = np.clip(hi * self.macs / (2 * self.sensitivity), self.min_sparsity, self.max_sparsity)
        return s, self.accuracy(s)

    # gymnasium ---------------------------------------------------------------------
    def _obs(self, prev: float) -> np.ndarray:
        t = min(self._t, self.num_units - 1)
        removed = (self.macs[: self._t] * self._s[: self._t]).sum() / self.total
        to_come = self.macs[t + 1 :].sum() / self.total
        obs = np.zeros(OBS_SIZE, dtype=np.float32)
        obs[:6] = [
            t / max(1, self.num_units - 1),
            self.macs[t] / self.total,
            removed,
            to_come,
            prev,
            self.target_ratio,
        ]
        return np.clip(obs, 0.0, 1.0)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._s = np.zeros(self.num_units)
        return self._obs(0.0), {}

    def step(self, action: Any):
        t = self._t
        wanted = self.sparsity_for_action(action)
        done_cost = (self.macs[:t] * (1 - self._s[:t])).sum()
        rest_at_max = (self.macs[t + 1 :] * (1 - self.max_sparsity)).sum()
        allowed = self.target_ratio * self.total - self.fixed - done_cost - rest_at_max
        needed = 1.0 - allowed / self.macs[t]
        s = float(np.clip(max(wanted, needed), self.min_sparsity, self.max_sparsity))
        self._s[t] = s
        self._t += 1
        info: dict[str, Any] = {"sparsity": s, "wanted_sparsity": wanted}
        terminated = self._t == self.num_units
        reward = 0.0
        if terminated:
            acc = self.accuracy(self._s)
            reward = acc * self.reward_scale
            info.update(accuracy=acc, macs_ratio=self.cost_ratio(self._s),
                        params_ratio=self.cost_ratio(self._s),
                        reward_terms={"accuracy": acc},
                        policy=PruningPolicy(dict(zip(self.unit_names, self._s.tolist(),
                                                      strict=True))))  # fmt: skip
        return self._obs(s), float(reward), terminated, False, info
