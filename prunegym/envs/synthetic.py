"""A pruning game whose best policy is known: for testing that agents really learn.

:class:`SyntheticPruningEnv` plays by the real rules (:class:`~prunegym.envs.game.WalledGame`:
the same action mapping, the same :class:`~prunegym.envs.wall.ActionWall` on rounded
kept counts, the same step and terminal infos) on an imaginary network with no model and
no data: unit ``i`` has ``channels`` channels and costs ``macs[i] * kept_i / channels``
MACs, a fixed part costs ``fixed_share`` of the total, and the "accuracy" of a policy is
``base_accuracy - sum_i sensitivity[i] * s_i**2`` (the reward is that times
``reward_scale``; AMC's rewards are a few units in size). The optimum of that convex
problem under the budget (ignoring rounding) is computed by :meth:`optimum`. Its
observation is its own 8 features, not the real env's.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from gymnasium import spaces

from prunegym.envs.contract import HeldoutScore
from prunegym.envs.game import WalledGame, check_bounds
from prunegym.envs.targets import Target, check_target
from prunegym.envs.wall import ActionWall
from prunegym.pruners import PruningPolicy

OBS_SIZE = 8


class SyntheticPruningEnv(WalledGame):
    """A known-optimum stand-in for the pruning environment (no model, no data)."""

    def __init__(
        self,
        n_units: int = 8,
        ratio: float = 0.5,
        min_sparsity: float = 0.0,
        max_sparsity: float = 0.8,
        fixed_share: float = 0.05,
        base_accuracy: float = 0.95,
        reward_scale: float = 1.0,
        problem_seed: int = 0,
        macs: Any = None,
        sensitivity: Any = None,
        channels: int = 256,
    ) -> None:
        super().__init__()
        rng = np.random.default_rng(problem_seed)
        n = int(n_units)
        ratio = check_target("macs", ratio)
        lo, hi = check_bounds(min_sparsity, max_sparsity)
        self.macs = np.asarray(macs if macs is not None else rng.uniform(0.5, 2.0, n),
                               dtype=np.float64)  # fmt: skip
        sens = np.asarray(sensitivity if sensitivity is not None else rng.uniform(0.05, 1.0, n),
                          dtype=np.float64)  # fmt: skip
        self.sensitivity = 0.5 * sens / sens.sum()
        self.base_accuracy = float(base_accuracy)
        self.reward_scale = float(reward_scale)
        prunable = float(self.macs.sum())
        self.fixed = fixed_share / (1 - fixed_share) * prunable
        self.total = prunable + self.fixed
        self.channels = np.full(n, int(channels), dtype=np.int64)
        target = Target("macs", ratio, self.total, ratio * self.total, self._cost)
        wall = ActionWall(self.channels, "channel", target, lo, hi, round_to=1)
        self._start_game([f"unit{i}" for i in range(n)], wall)
        self.observation_space = spaces.Box(0.0, 1.0, (OBS_SIZE,), np.float32)

    # the imaginary network -----------------------------------------------------------
    def _cost(self, kept: np.ndarray) -> float:
        return float(self.fixed + (self.macs * np.asarray(kept) / self.channels).sum())

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

    def score_heldout(self, policy: PruningPolicy) -> HeldoutScore:
        """The exact accuracy again: the imaginary network has no sampling noise."""
        s = [policy.sparsities[name] for name in self.unit_names]
        acc = self.accuracy(s)
        return {"accuracy": acc, "reward": acc * self.reward_scale, "samples": 0}

    # the game ------------------------------------------------------------------------
    def _observe(self) -> np.ndarray:
        n = self.n_units
        done = self.step_index
        t = min(done, n - 1)
        removed = (self.macs[:done] * (1 - self._kept[:done] / self.channels[:done])).sum()
        previous = float(self._sparsity[done - 1]) if done > 0 else 0.0
        obs = np.zeros(OBS_SIZE, dtype=np.float32)
        obs[:7] = [
            done / max(1, n - 1),
            self.macs[t] / self.total,
            removed / self.total,
            self.macs[t + 1 :].sum() / self.total,
            previous,
            self.target_ratio,
            self.min_allowed_sparsity(),
        ]
        return np.clip(obs, 0.0, 1.0)

    def _finish(self) -> tuple[float, dict[str, Any]]:
        acc = self.accuracy(self._sparsity)
        reward = acc * self.reward_scale
        kept = self._kept.copy()
        achieved = self._cost(kept)
        ratio = achieved / self.total
        policy = PruningPolicy(dict(zip(self.unit_names, self._sparsity.tolist(), strict=True)),
                               round_to=1)  # fmt: skip
        return reward, {
            "accuracy": acc,
            "macs_ratio": ratio,
            "params_ratio": ratio,
            "policy": policy,
            "requested_sparsities": self._requested.tolist(),
            "sparsities": self._sparsity.tolist(),
            "kept_counts": kept.tolist(),
            "metrics": {"accuracy": acc, "macs_ratio": ratio, "params_ratio": ratio},
            "reward": reward,
            "reward_name": "synthetic",
            "reward_terms": {"accuracy": acc},
            "target": {"kind": "macs", "ratio": self.target_ratio,
                       "budget": self.target.budget, "achieved": achieved},
            "evaluation": {"mode": "synthetic", "cached": False},
            "seconds": {"steps": self._step_seconds,
                        "episode": time.perf_counter() - self._episode_start},
        }  # fmt: skip
