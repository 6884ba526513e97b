"""Playing the pruning game: one episode, its record, and the uniform-sparsity solver.

The searchers know the environment only through the game contract
(:mod:`prunegym.envs.contract`): ``Box(-1, 1, (1,))`` actions, at most one step per
unit, a :class:`~prunegym.envs.contract.StepInfo` per step and a
:class:`~prunegym.envs.contract.TerminalInfo` at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from prunegym.agents.results import METRIC_KEYS, EpisodeRecord
from prunegym.envs.contract import PruningGame, game_of


def check_action_space(env: gym.Env) -> None:
    space = env.action_space
    if not (isinstance(space, gym.spaces.Box) and space.shape == (1,)):
        raise TypeError(f"a pruning env has a Box action of shape (1,), got {space}")


def uniform_sparsity(env: gym.Env | PruningGame, iterations: int = 60) -> float:
    """The smallest sparsity that, applied to every unit, meets the budget.

    Bisection on the game's exact ``within_budget`` (kept counts after rounding), no
    evaluation; ``env`` is a pruning env (wrapped or not) or its game. At
    ``max_sparsity`` every unit is at its fewest, which the action wall guarantees
    meets the budget. After 60 halvings the result is within 1e-18 of the boundary.
    """
    game = game_of(env) if isinstance(env, gym.Env) else env
    n = game.n_units
    lo, hi = game.min_sparsity, game.max_sparsity
    if game.within_budget(np.full(n, lo)):
        return lo
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if game.within_budget(np.full(n, mid)) else (mid, hi)
    return hi


def fill_budget(env: gym.Env | PruningGame, sparsities: Any) -> np.ndarray:
    """``sparsities`` scaled by one factor so that, after rounding, they meet the budget
    with as little pruning as possible: within one rounding step under it.

    The factor is the smallest ``alpha >= 0`` for which ``alpha * sparsities`` (clipped to
    ``[min_sparsity, max_sparsity]``) meets the budget, found by bisection on the game's
    exact ``within_budget`` (no evaluation). A loose budget gives ``min_sparsity``
    everywhere; at most every unit goes to ``max_sparsity`` (which the wall guarantees
    meets it).
    """
    game = game_of(env) if isinstance(env, gym.Env) else env
    lo_s, hi_s = game.min_sparsity, game.max_sparsity
    s = np.clip(np.asarray(sparsities, dtype=np.float64).reshape(-1), 0.0, hi_s)
    s = np.where(s > 0.0, s, np.finfo(np.float64).tiny)  # every unit can be scaled up

    def scaled(alpha: float) -> np.ndarray:
        return np.clip(alpha * s, lo_s, hi_s)

    if game.within_budget(scaled(0.0)):
        return scaled(0.0)
    lo, hi = 0.0, hi_s / float(s.min())  # infeasible / feasible: every unit at max
    for _ in range(2000):  # until float resolution (about 60 halvings per decade of hi)
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (lo, mid) if game.within_budget(scaled(mid)) else (mid, hi)
    return scaled(hi)


def record_from_infos(
    episode: int, infos: Sequence[Mapping[str, Any]], seconds: float
) -> EpisodeRecord:
    """The :class:`EpisodeRecord` of a finished episode from its step infos (the last
    one a :class:`~prunegym.envs.contract.TerminalInfo`, whose ``reward`` is exact:
    SB3's vectorised env hands the agent a float32 copy)."""
    if not infos:
        raise ValueError("an episode has at least one step")
    last = infos[-1]
    metrics = {k: float(last["metrics"][k]) for k in METRIC_KEYS if k in last["metrics"]}
    return EpisodeRecord(
        episode=int(episode),
        sparsities=tuple(float(v) for v in last["sparsities"]),
        reward=float(last["reward"]),
        metrics=metrics,
        terms={str(k): float(v) for k, v in last["reward_terms"].items()},
        seconds=float(seconds),
        policy=last["policy"],
        kept=tuple(int(k) for k in last["kept_counts"]),
        cache_hit=bool(last["evaluation"]["cached"]),
    )


def play_episode(
    env: gym.Env,
    act: Callable[[np.ndarray, int], float],
    episode: int,
    seed: int | None = None,
) -> EpisodeRecord:
    """Play one episode with ``act(observation, unit) -> action in [-1, 1]``, where
    ``unit`` is the index of the unit being decided (units with a single level are
    applied without a step, so not every unit is asked)."""
    start = time.perf_counter()
    obs, info = env.reset(seed=seed)
    unit = int(info["index"])
    infos: list[Mapping[str, Any]] = []
    while True:
        a = float(np.clip(act(obs, unit), -1.0, 1.0))
        obs, _, terminated, truncated, info = env.step(np.array([a], dtype=np.float32))
        infos.append(info)
        if terminated or truncated:
            break
        unit = int(info["next_index"])
    return record_from_infos(episode, infos, time.perf_counter() - start)
