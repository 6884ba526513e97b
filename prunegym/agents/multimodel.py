"""A generalist's training env: several pruning games played in turn, one episode each.

An agent trained on one model sees some observation features constant (the kind
one-hots, kernel, stride, the budget); trained on several models and budgets, it sees
them vary. The observation and action spaces are the same for every pruning game, so a
single Gymnasium env that switches its game at every ``reset`` is all SB3 needs (a
vectorised env would step several games at once, which the episode-credit buffer does
not support). :func:`train_generalist` trains an agent on it for an exact number of
episodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from prunegym.agents.episodes import record_from_infos
from prunegym.agents.factory import OFF_POLICY, make_agent
from prunegym.agents.results import EpisodeRecord
from prunegym.envs.contract import (
    GameDescription,
    HeldoutScore,
    PruningGame,
    describe_game,
    game_of,
)
from prunegym.pruners import PruningPolicy

#: Description fields every game of a :class:`MultiModelEnv` must share.
SHARED_FIELDS = (
    "feature_version", "observation_features", "action_mapping", "granularity", "reward_name",
    "target_kind", "min_sparsity", "max_sparsity", "round_to",
)  # fmt: skip


class MultiModelEnv(gym.Env[np.ndarray, np.ndarray]):
    """Pruning games (``envs``: models and/or budgets) played in turn, one episode each.

    Episode ``e`` (counted from the first ``reset``) plays game ``e % len(envs)``. The
    games must share the observation and action spaces and :data:`SHARED_FIELDS` of
    their descriptions (they differ in model, units and budget). The game contract
    (``n_units``, ``unit_names``, ...) answers for the game being played;
    :meth:`game_descriptions` describes all of them. ``info["source"]`` is the index of
    the game of the step.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, envs: Sequence[gym.Env]) -> None:
        super().__init__()
        self.envs = list(envs)
        if not self.envs:
            raise ValueError("MultiModelEnv needs at least one pruning env")
        self._games: list[PruningGame] = [game_of(e) for e in self.envs]
        self._descriptions: list[dict[str, Any]] = [dict(describe_game(e)) for e in self.envs]
        first = self.envs[0]
        for i, (env, d) in enumerate(zip(self.envs, self._descriptions, strict=True)):
            if env.observation_space != first.observation_space:
                raise ValueError(f"env {i} observes {env.observation_space}, env 0 "
                                 f"{first.observation_space}")  # fmt: skip
            if env.action_space != first.action_space:
                raise ValueError(f"env {i} acts in {env.action_space}, env 0 {first.action_space}")
            for key in SHARED_FIELDS:
                if d[key] != self._descriptions[0][key]:
                    raise ValueError(f"env {i} has another {key} than env 0: "
                                     f"{d[key]!r} vs {self._descriptions[0][key]!r}")  # fmt: skip
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self.episodes_started = 0

    # which game -------------------------------------------------------------------
    @property
    def current(self) -> int:
        """Index of the game being played (0 before the first reset)."""
        return (self.episodes_started - 1) % len(self.envs) if self.episodes_started else 0

    def game_at(self, episode: int) -> int:
        """Index of the game of episode ``episode`` (counted from 0)."""
        return episode % len(self.envs)

    def episode_steps(self, start: int, count: int) -> int:
        """The most steps episodes ``start`` .. ``start + count - 1`` can take (one per
        unit; units the wall leaves a single level are skipped, so often fewer)."""
        return sum(self._games[self.game_at(e)].n_units for e in range(start, start + count))

    @property
    def max_units(self) -> int:
        return max(g.n_units for g in self._games)

    def game_descriptions(self) -> list[GameDescription]:
        """The description of every game, in order."""
        return [cast(GameDescription, dict(d)) for d in self._descriptions]

    # gymnasium --------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.episodes_started += 1
        obs, info = self.envs[self.current].reset(seed=seed, options=options)
        return obs, {**info, "source": self.current}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.episodes_started:
            raise RuntimeError("call reset() first")
        obs, reward, terminated, truncated, info = self.envs[self.current].step(action)
        return obs, float(reward), terminated, truncated, {**info, "source": self.current}

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # the game contract: the game being played --------------------------------------
    @property
    def _game(self) -> PruningGame:
        return self._games[self.current]

    @property
    def action_mapping(self) -> str:
        return self._game.action_mapping

    @property
    def n_units(self) -> int:
        return self._game.n_units

    @property
    def unit_names(self) -> list[str]:
        return self._game.unit_names

    @property
    def target_ratio(self) -> float:
        return self._game.target_ratio

    @property
    def min_sparsity(self) -> float:
        return self._game.min_sparsity

    @property
    def max_sparsity(self) -> float:
        return self._game.max_sparsity

    def sparsity_for_action(self, action: Any) -> float:
        return self._game.sparsity_for_action(action)

    def action_for_sparsity(self, sparsity: float) -> float:
        return self._game.action_for_sparsity(sparsity)

    def cost_ratio(self, sparsities: Any) -> float:
        return self._game.cost_ratio(sparsities)

    def within_budget(self, sparsities: Any) -> bool:
        return self._game.within_budget(sparsities)

    def score_heldout(self, policy: PruningPolicy) -> HeldoutScore | None:
        return self._game.score_heldout(policy)

    def game_description(self) -> GameDescription:
        return cast(GameDescription, dict(self._descriptions[self.current]))


@dataclass
class GeneralistRun:
    """What :func:`train_generalist` produced: the agent, its env, every episode played
    (``sources[i]`` is the game of ``history[i]``)."""

    agent: BaseAlgorithm
    env: MultiModelEnv
    history: list[EpisodeRecord]
    sources: list[int]


class _EpisodeLog(BaseCallback):
    """Collects each finished episode's record and game index; stops the training after
    ``episodes`` episodes (their step counts are only known once played)."""

    def __init__(self, run: GeneralistRun, episodes: int) -> None:
        super().__init__()
        self.run = run
        self.episodes = episodes
        self._steps: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        info = dict(self.locals["infos"][0])
        self._steps.append(info)
        if bool(self.locals["dones"][0]):
            self.run.history.append(record_from_infos(len(self.run.history), self._steps, 0.0))
            self.run.sources.append(int(info["source"]))
            self._steps = []
        return len(self.run.history) < self.episodes


def train_generalist(
    envs: MultiModelEnv | Sequence[gym.Env],
    episodes: int,
    algo: str = "ddpg",
    seed: int = 0,
    *,
    warmup_episodes: int = 100,
    replay_episodes: int = 100,
    **agent_options: Any,
) -> GeneralistRun:
    """Train agent ``algo`` for exactly ``episodes`` episodes on games played in turn.

    ``warmup_episodes`` and ``replay_episodes`` count episodes of any game: the first
    ``warmup_episodes`` episodes act at random without updates and the replay buffer
    holds ``replay_episodes`` episodes of the largest game. Other ``agent_options`` go to
    :func:`~prunegym.agents.factory.make_agent`. Save the agent with
    :func:`~prunegym.agents.metadata.save_agent` (it records every game).
    """
    env = envs if isinstance(envs, MultiModelEnv) else MultiModelEnv(envs)
    if int(episodes) < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if algo in OFF_POLICY:
        agent_options.setdefault("buffer_size", int(replay_episodes) * env.max_units)
    agent = make_agent(algo, env, seed=seed, warmup_episodes=warmup_episodes,
                       replay_episodes=replay_episodes, **agent_options)  # fmt: skip
    run = GeneralistRun(agent, env, [], [])
    agent.learn(env.episode_steps(0, int(episodes)), callback=_EpisodeLog(run, int(episodes)))
    return run
