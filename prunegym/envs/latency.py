"""Real-latency reporting as a Gymnasium wrapper around a channel-pruning env.

The latency target plans with a lookup estimate; :class:`RealLatency` measures the
final policy of every episode for real (the physically pruned model, timed on this
device) and adds ``latency_ms``, ``dense_latency_ms`` and ``latency_ratio`` to the
terminal ``info["metrics"]`` (``latency_ratio`` also at the top level, and the seconds
spent in ``info["seconds"]["latency"]``). Rewards do not read latency, so the reward is
unchanged. Measurements are cached by kept counts.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from prunegym.pruners import ChannelPruner, PruningPolicy
from prunegym.pruners import measure_latency as time_model


class RealLatency(gym.Wrapper):
    """Measure each episode's final policy: ``repeats`` timed runs after ``warmup``.

    The timing input is the env's ``latency_input``; the dense latency is the latency
    target's own dense measurement when the env has one, else timed here once.
    """

    def __init__(
        self, env: gym.Env, *, repeats: int = 30, warmup: int = 10, threads: int | None = None
    ) -> None:
        super().__init__(env)
        pruner = env.get_wrapper_attr("pruner")
        if not isinstance(pruner, ChannelPruner):
            raise ValueError("measure_latency needs channel pruning")
        self.pruner: ChannelPruner = pruner
        self.latency_input: torch.Tensor = env.get_wrapper_attr("latency_input")
        self.repeats, self.warmup, self.threads = int(repeats), int(warmup), threads
        self._dense_ms: float | None = None
        self._cache: dict[tuple[int, ...], float] = {}

    def dense_latency_ms(self) -> float:
        if self._dense_ms is None:
            table = self.env.get_wrapper_attr("target").latency_table
            self._dense_ms = (
                table.dense_ms if table is not None
                else self._time(self.pruner.model)
            )  # fmt: skip
        return self._dense_ms

    def latency_ms(self, policy: PruningPolicy, kept: np.ndarray) -> float:
        key = tuple(int(k) for k in kept)
        if key not in self._cache:
            small = self.pruner.apply(policy)
            self._cache[key] = self._time(small)
        return self._cache[key]

    def _time(self, model: nn.Module) -> float:
        return time_model(model, self.latency_input, threads=self.threads, warmup=self.warmup,
                          repeats=self.repeats).median_ms  # fmt: skip

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            start = time.perf_counter()
            ms = self.latency_ms(info["policy"], np.asarray(info["kept_counts"]))
            dense = self.dense_latency_ms()
            figures = {"latency_ms": ms, "dense_latency_ms": dense, "latency_ratio": ms / dense}
            seconds = {**info["seconds"], "latency": time.perf_counter() - start}
            info = {**info, "metrics": {**info["metrics"], **figures},
                    "latency_ratio": figures["latency_ratio"], "seconds": seconds}  # fmt: skip
        return obs, float(reward), terminated, truncated, info
