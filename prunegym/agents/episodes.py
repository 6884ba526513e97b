"""How agents and searchers talk to a pruning environment.

Everything the searchers assume about the environment lives here, so that any
Gymnasium env playing the pruning game works: ``Box(-1, 1, (1,))`` actions, one step
per prunable unit, the episode's score in the last step's reward. Optional extras,
read when present on ``env.unwrapped`` or in ``info``:

- ``num_units`` / ``table`` (a LayerTable): the episode length and the unit names;
- ``info["sparsity"]`` at each step: the sparsity actually applied (after the wall);
- the last step's ``info``: ``accuracy``, ``macs_ratio``, ``params_ratio``,
  ``reward_terms`` (a mapping) and ``policy`` (a :class:`PruningPolicy` or its dict);
- ``sparsity_for_action(a)`` / ``action_for_sparsity(s, unit)`` (the env's action
  mapping), and a cost: ``cost_ratio(sparsities)`` with ``target_ratio``, or
  :class:`~prunegym.envs.PruningEnv`'s ``wall``, ``budget`` and cost function; used by
  the uniform searcher to solve the budget without evaluations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from prunegym.agents.results import METRIC_KEYS, EpisodeRecord
from prunegym.pruners import PruningPolicy


def episode_length(env: gym.Env) -> int:
    """Steps per episode (the number of prunable units)."""
    base = env.unwrapped
    for attr in ("num_units", "n_units"):
        n = getattr(base, attr, None)
        if n is not None:
            return int(n)
    table = getattr(base, "table", None)
    if table is not None:
        return len(table)
    raise TypeError(
        f"{type(base).__name__} does not say how many units it has "
        "(no num_units attribute and no table)"
    )


def unit_names(env: gym.Env) -> list[str]:
    base = env.unwrapped
    names = getattr(base, "unit_names", None)
    if names is None and getattr(base, "table", None) is not None:
        names = base.table.names
    if names is None:
        names = [f"unit{i}" for i in range(episode_length(env))]
    return [str(n) for n in names]


def action_for_sparsity(env: gym.Env, sparsity: float, unit: int) -> float:
    """The action that asks ``env`` for ``sparsity`` at ``unit``."""
    base = env.unwrapped
    a = base.action_for_sparsity(sparsity, unit)
    return float(np.asarray(a, dtype=np.float64).reshape(-1)[0])


def uniform_meets_budget(env: gym.Env):
    """A function ``s -> bool`` (does sparsity ``s`` on every unit meet the budget?),
    computed without evaluating anything, or None when the env offers no cost."""
    base = env.unwrapped
    n = episode_length(env)
    if hasattr(base, "cost_ratio") and hasattr(base, "target_ratio"):
        return lambda s: base.cost_ratio(np.full(n, s)) <= base.target_ratio
    wall, cost, budget = (getattr(base, a, None) for a in ("wall", "_cost", "budget"))
    if wall is not None and callable(cost) and budget is not None:
        return lambda s: cost(wall.kept(np.full(n, s))) <= budget
    return None


def check_action_space(env: gym.Env) -> None:
    space = env.action_space
    if not (isinstance(space, gym.spaces.Box) and space.shape == (1,)):
        raise TypeError(f"a pruning env has a Box action of shape (1,), got {space}")


def record_from_infos(
    env: gym.Env,
    episode: int,
    actions: Sequence[float],
    infos: Sequence[Mapping[str, Any]],
    reward: float,
    seconds: float,
) -> EpisodeRecord:
    """Build the :class:`EpisodeRecord` of a finished episode from its step infos."""
    base = env.unwrapped
    sparsities = []
    for a, info in zip(actions, infos, strict=True):
        if "sparsity" in info:
            sparsities.append(float(info["sparsity"]))
        elif hasattr(base, "sparsity_for_action"):
            sparsities.append(float(base.sparsity_for_action(a)))
        else:
            sparsities.append(float(a))
    last = infos[-1] if infos else {}
    source = {**last, **dict(last.get("metrics", None) or {})}
    metrics = {k: float(source[k]) for k in METRIC_KEYS if k in source}
    terms_src = last.get("reward_terms", last.get("terms", {})) or {}
    terms = {str(k): float(v) for k, v in dict(terms_src).items()}
    policy = last.get("policy")
    if isinstance(policy, Mapping):
        policy = PruningPolicy.from_dict(policy)
    if policy is None and getattr(base, "table", None) is not None:
        policy = PruningPolicy.from_array(base.table, np.asarray(sparsities))
    if policy is None:
        policy = PruningPolicy(dict(zip(unit_names(env), sparsities, strict=True)))
    return EpisodeRecord(
        episode=int(episode),
        sparsities=tuple(sparsities),
        reward=float(reward),
        metrics=metrics,
        terms=terms,
        seconds=float(seconds),
        policy=policy,
    )


def play_episode(
    env: gym.Env,
    act: Callable[[np.ndarray, int], float],
    episode: int,
    seed: int | None = None,
) -> EpisodeRecord:
    """Play one episode with ``act(observation, step) -> action in [-1, 1]``."""
    start = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    actions: list[float] = []
    infos: list[Mapping[str, Any]] = []
    reward = 0.0
    step = 0
    while True:
        a = float(np.clip(act(obs, step), -1.0, 1.0))
        obs, r, terminated, truncated, info = env.step(np.array([a], dtype=np.float32))
        actions.append(a)
        infos.append(info)
        reward = float(r)
        step += 1
        if terminated or truncated:
            break
    return record_from_infos(env, episode, actions, infos, reward, time.perf_counter() - start)
