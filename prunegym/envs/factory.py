"""Building a pruning env the way the registered ids do: the env, plus real latency.

``gym.make("prunegym/ChannelPruning-v0", ...)`` and ``"prunegym/WeightPruning-v0"``
call :func:`channel_pruning_env` / :func:`weight_pruning_env`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from torch import nn

from prunegym.envs.env import ChannelPruningEnv, PruningEnv, WeightPruningEnv
from prunegym.envs.latency import RealLatency


def make_pruning_env(
    model: nn.Module,
    data: Any = None,
    *,
    measure_latency: bool | None = None,
    env_class: type[PruningEnv] = PruningEnv,
    **kwargs: Any,
) -> gym.Env:
    """A :class:`PruningEnv` (``kwargs`` are its arguments), wrapped in :class:`RealLatency`
    when ``measure_latency`` (default: for the latency target).

    The wrapper times with the ``threads`` and ``warmup`` of ``latency_options`` and
    ``dense_repeats`` (default 30) repeats.
    """
    env = env_class(model, data, **kwargs)
    if measure_latency is None:
        measure_latency = env.target.kind == "latency"
    if not measure_latency:
        return env
    options = dict(kwargs.get("latency_options") or {})
    settings = {k: options[k] for k in ("threads", "warmup") if k in options}
    return RealLatency(env, repeats=int(options.get("dense_repeats", 30)), **settings)


def channel_pruning_env(model: nn.Module, data: Any = None, **kwargs: Any) -> gym.Env:
    """Entry point of ``prunegym/ChannelPruning-v0``."""
    return make_pruning_env(model, data, env_class=ChannelPruningEnv, **kwargs)


def weight_pruning_env(model: nn.Module, data: Any = None, **kwargs: Any) -> gym.Env:
    """Entry point of ``prunegym/WeightPruning-v0``."""
    return make_pruning_env(model, data, env_class=WeightPruningEnv, **kwargs)
