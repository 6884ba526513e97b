"""Playing the pruning game: one episode, its record, and the uniform-sparsity solver.

The searchers know the environment only through the game contract
(:mod:`prunegym.envs.contract`): ``Box(-1, 1, (1,))`` actions, one step per unit, a
:class:`~prunegym.envs.contract.StepInfo` per step and a
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
        sparsities=tuple(float(info["sparsity"]) for info in infos),
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
    """Play one episode with ``act(observation, step) -> action in [-1, 1]``."""
    start = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    infos: list[Mapping[str, Any]] = []
    while True:
        a = float(np.clip(act(obs, len(infos)), -1.0, 1.0))
        obs, _, terminated, truncated, info = env.step(np.array([a], dtype=np.float32))
        infos.append(info)
        if terminated or truncated:
            break
    return record_from_infos(episode, infos, time.perf_counter() - start)
