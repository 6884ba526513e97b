"""A generalist search: one RL agent learning several pruning games in turn, each game's
candidates kept as that game's own search.

:class:`GeneralistSearcher` is an :class:`~prunegym.agents.rl.RLSearcher` on a
:class:`~prunegym.agents.multimodel.MultiModelEnv`: episode ``e`` plays game
``e % n_games``. Its history holds every episode in the order played. Each game also has
a :class:`WorkloadSearch`, a searcher that searches nothing itself: it receives that
game's episodes renumbered from 0, runs its own callbacks (history file, best policy,
...) and, at the end, makes that game's held-out selection with the agent's
deterministic policy on it as an extra candidate. Each game thus ends as an ordinary
search result. The checkpoint is the RL searcher's: the game of an episode follows from
its number, so a resumed search continues the cycle where it stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from prunegym.agents.checkpoint import CheckpointError, CheckpointState
from prunegym.agents.episodes import play_episode
from prunegym.agents.factory import OFF_POLICY
from prunegym.agents.multimodel import MultiModelEnv
from prunegym.agents.results import EpisodeRecord, SearchResult
from prunegym.agents.rl import RLSearcher
from prunegym.agents.searcher import Searcher
from prunegym.envs.contract import game_of

Act = Callable[[np.ndarray, int], float]


class WorkloadSearch(Searcher):
    """One game's share of a generalist search: its episodes (numbered from 0), its
    callbacks and its held-out selection. It plays nothing itself."""

    name = "workload"

    def __init__(self, env: gym.Env, callbacks: Sequence[Any] = ()) -> None:
        super().__init__(env)
        self.unit_names = list(game_of(env).unit_names)
        self._callbacks = list(callbacks)
        self._act: Act | None = None

    def start(self) -> None:
        self._notify("on_search_start")

    def add(self, record: EpisodeRecord) -> None:
        """Record one of the generalist's episodes of this game."""
        self._record(dataclasses.replace(record, episode=len(self.history)))

    def safe_point(self) -> None:
        self._safe_point()

    def finish(self, act: Act | None, select_top: int, stopped: bool) -> SearchResult:
        """The held-out selection (``act``: the agent's deterministic policy, played once
        on this game as an extra candidate), then the callbacks' end of search."""
        self._act, self.select_top, self.stop_requested = act, select_top, stopped
        if self.env is not None:
            self._select(self.env)
        result = self.result()
        self._notify("on_search_end", result)
        return result

    def close(self) -> None:
        for cb in self._callbacks:
            close = getattr(cb, "close", None)
            if close is not None:
                close()

    def _actor_candidate(self, env: gym.Env) -> EpisodeRecord | None:
        return None if self._act is None else play_episode(env, self._act, len(self.history))


class GeneralistSearcher(RLSearcher):
    """An off-policy agent (``ddpg``, ``td3``, ``sac``) trained on the games of ``env``
    played in turn; ``parts[i]`` keeps game ``i``'s episodes (see the module docstring).

    ``replay_episodes`` sizes the replay buffer in episodes of the largest game; other
    ``agent_options`` go to :func:`~prunegym.agents.factory.make_agent`.
    """

    def __init__(
        self,
        env: MultiModelEnv,
        parts: Sequence[WorkloadSearch],
        seed: int = 0,
        algo: str = "ddpg",
        replay_episodes: int = 100,
        **agent_options: Any,
    ) -> None:
        if algo not in OFF_POLICY:
            raise ValueError(f"a generalist needs an off-policy agent ({', '.join(OFF_POLICY)}), "
                             f"not {algo!r}")  # fmt: skip
        if len(parts) != len(env.envs):
            raise ValueError(f"{len(env.envs)} games but {len(parts)} workload searches")
        agent_options.setdefault("buffer_size", int(replay_episodes) * env.max_units)
        super().__init__(env, seed=seed, algo=algo, replay_episodes=replay_episodes,
                         **agent_options)  # fmt: skip
        self.multi = env
        self.parts = list(parts)

    def search(
        self,
        env: gym.Env | None = None,
        episodes: int = 100,
        callbacks: Sequence[Any] = (),
        progress: bool = True,
    ) -> SearchResult:
        """Play ``episodes`` episodes in all (the games in turn); each part's result is
        then :attr:`results`. The returned result is the whole history's."""
        if env is not None and env is not self.multi:
            raise ValueError("a generalist searches the MultiModelEnv it was built with")
        for part in self.parts:
            part.start()
        try:
            return super().search(self.multi, episodes, callbacks, progress)
        finally:
            for part in self.parts:
                part.close()

    @property
    def results(self) -> list[SearchResult]:
        """Each game's result (its episodes and held-out pick), in game order."""
        return [part.result() for part in self.parts]

    # the RL searcher's hooks --------------------------------------------------------
    def _run(self, env: gym.Env, episodes: int) -> None:
        if self.history:  # resumed: the next reset plays the game after the last episode
            self.multi.episodes_started = len(self.history)
        super()._run(env, episodes)

    def _max_episode_steps(self) -> int:
        return self.multi.max_units

    def _record(self, record: EpisodeRecord) -> None:
        super()._record(record)
        self.parts[self.multi.game_at(record.episode)].add(record)

    def _safe_point(self) -> None:
        super()._safe_point()
        for part in self.parts:
            part.safe_point()

    def _select(self, env: gym.Env) -> None:
        self.selection, self.actor_record = [], None
        act = None if self.stop_requested else self.deterministic_act()
        for part in self.parts:
            part.finish(act, self.select_top, self.stop_requested)
        self._resumed = act is not None  # the parts' episodes interrupted SB3's rollout

    # checkpoints --------------------------------------------------------------------
    def state_dict(self) -> CheckpointState:
        state = super().state_dict()
        state.meta["games"] = len(self.parts)
        return state

    def load_state_dict(self, state: CheckpointState) -> None:
        games = state.meta.get("games")
        if games != len(self.parts):
            raise CheckpointError(f"checkpoint was made by a generalist on {games} game(s), "
                                  f"not {len(self.parts)}")  # fmt: skip
        super().load_state_dict(state)
        for part in self.parts:
            part.history = []
        for record in self.history:
            part = self.parts[self.multi.game_at(record.episode)]
            part.history.append(dataclasses.replace(record, episode=len(part.history)))
