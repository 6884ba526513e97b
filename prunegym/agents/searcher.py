"""The searcher base class: episodes, callbacks, stop requests and checkpoints.

``searcher.search(env, episodes) -> SearchResult(best, history)``. Every searcher plays
the same environment through the game contract (:mod:`prunegym.envs.contract`), so
every candidate goes through the same action wall and the same evaluator; a comparison
is only honest with the same ``episodes``. At the end the ``select_top`` best
candidates (and an RL agent's deterministic policy) are re-scored on the held-out slice
and the best there is the answer (:mod:`prunegym.agents.selection`).

A searcher's whole state (history, RNG states, and a subclass's own: agent, replay
buffer, archive) is saved by :meth:`Searcher.save_checkpoint` at safe points and
restored by :meth:`Searcher.load_checkpoint`; a resumed search continues exactly where
it stopped. Checkpoints are JSON and arrays (:mod:`prunegym.agents.checkpoint`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from prunegym.agents.callbacks import ProgressBarCallback, SearchCallback
from prunegym.agents.checkpoint import (
    CheckpointError,
    CheckpointState,
    generator_from_state,
    generator_state,
    global_rng_state,
    one_line,
    read_checkpoint,
    restore_global_rng,
    write_checkpoint,
)
from prunegym.agents.episodes import check_action_space
from prunegym.agents.results import EpisodeRecord, SearchResult, best_record
from prunegym.agents.selection import TOP_K, pick, rescore, top_candidates
from prunegym.envs.contract import PruningGame, game_of


class Searcher:
    """Base class of every searcher (see the module docstring)."""

    name = "searcher"
    #: Candidates re-scored on the held-out slice at the end of a search (0: none).
    select_top: int = TOP_K

    def __init__(self, env: gym.Env | None = None, seed: int = 0) -> None:
        self.env = env
        self.seed = int(seed)
        self.history: list[EpisodeRecord] = []
        self.selection: list[EpisodeRecord] = []
        self.actor_record: EpisodeRecord | None = None
        self.unit_names: list[str] = []
        self.stop_requested = False
        self._callbacks: list[SearchCallback] = []
        self._restored_env_rng: dict[str, Any] | None = None

    # the public interface ------------------------------------------------------------
    def search(
        self,
        env: gym.Env | None = None,
        episodes: int = 100,
        callbacks: Sequence[SearchCallback] = (),
        progress: bool = True,
    ) -> SearchResult:
        """Evaluate up to ``episodes`` episodes in total (a resumed search counts the
        episodes it already has) and return the best policy and the whole history.

        ``progress`` shows a progress bar unless ``callbacks`` hold one already. Every
        callback is closed at the end, also when the search fails.
        """
        env = env if env is not None else self.env
        if env is None:
            raise ValueError("search() needs an environment")
        if int(episodes) < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        check_action_space(env)
        self.env = env
        self.unit_names = self.game.unit_names
        self.stop_requested = False
        self._callbacks = list(callbacks)
        if progress and not any(isinstance(cb, ProgressBarCallback) for cb in callbacks):
            self._callbacks.append(ProgressBarCallback(int(episodes)))
        try:
            self._notify("on_search_start")
            if len(self.history) < int(episodes):
                self._run(env, int(episodes))
            self._select(env)
            result = self.result()
            self._notify("on_search_end", result)
        finally:
            for cb in self._callbacks:
                _hook(cb, "close")()
        return result

    @property
    def game(self) -> PruningGame:
        """The game the searcher's env plays (through any Gymnasium wrappers)."""
        if self.env is None:
            raise ValueError("the searcher has no environment yet")
        return game_of(self.env)

    def result(self) -> SearchResult:
        """The answer (the held-out selection's pick, once made) and the history."""
        best = pick(self.selection) if self.selection else self.best
        return SearchResult(best, list(self.history), list(self.unit_names),
                            list(self.selection), self.actor_record)  # fmt: skip

    def _select(self, env: gym.Env) -> None:
        """Re-score the best candidates on the held-out slice (not after a stop request:
        the user asked to stop, and the answer is then the best search reward)."""
        self.selection, self.actor_record = [], None
        if self.stop_requested or not self.history or self.select_top < 1:
            return
        self.actor_record = self._actor_candidate(env)
        extra = [] if self.actor_record is None else [self.actor_record]
        candidates = top_candidates(self.history, self.select_top) + extra
        self.selection = rescore(self.game, candidates)
        if extra:
            self.actor_record = self.selection[-1]  # with its held-out score

    def _actor_candidate(self, env: gym.Env) -> EpisodeRecord | None:
        """An extra candidate for the selection (an RL agent's deterministic policy)."""
        return None

    @property
    def best(self) -> EpisodeRecord | None:
        """The best so far by search reward (the earliest on ties); the search's answer
        is :meth:`result`'s ``best``, picked on the held-out slice."""
        return best_record(self.history)

    def request_stop(self) -> None:
        """Stop at the next safe point (after which a checkpoint callback saves)."""
        self.stop_requested = True

    def exploration_sigma(self) -> float:
        return math.nan

    # for subclasses ---------------------------------------------------------------
    def _run(self, env: gym.Env, episodes: int) -> None:
        raise NotImplementedError

    def _record(self, record: EpisodeRecord) -> None:
        self.history.append(record)
        self._notify("on_episode", record)

    def _safe_point(self) -> None:
        self._notify("on_safe_point")

    def _notify(self, hook: str, *args: Any) -> None:
        for cb in self._callbacks:
            _hook(cb, hook)(self, *args)

    def _reset_seed(self) -> int | None:
        """The seed of the env's first reset (later resets continue its RNG)."""
        if self.history:
            self._restore_env_rng()
            return None
        return self.seed

    def _restore_env_rng(self) -> None:
        if self._restored_env_rng is not None and self.env is not None:
            self.env.np_random = generator_from_state(self._restored_env_rng)
            self._restored_env_rng = None

    # checkpoints --------------------------------------------------------------------
    def state_dict(self) -> CheckpointState:
        """The searcher's whole state; subclasses add their own to it."""
        state = CheckpointState()
        state.meta.update(
            searcher=self.name,
            seed=self.seed,
            unit_names=list(self.unit_names),
            history=[r.to_dict() for r in self.history],
            env_rng=None if self.env is None else generator_state(self.env.np_random),
        )
        global_rng_state(state)
        return state

    def load_state_dict(self, state: CheckpointState) -> None:
        """Restore :meth:`state_dict`'s state (global RNG states last)."""
        meta = state.meta
        check_searcher(meta, self.name)
        history = [EpisodeRecord.from_dict(r) for r in meta["history"]]
        names = [str(n) for n in meta["unit_names"]]
        env_rng = meta["env_rng"]
        if env_rng is not None:
            generator_from_state(env_rng)  # checked now, set at the first reset
        restore_global_rng(state)
        self.seed = int(meta["seed"])
        self.history, self.unit_names, self._restored_env_rng = history, names, env_rng

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write the whole state to ``path`` atomically (a crash leaves the old one)."""
        write_checkpoint(path, self.state_dict())
        return Path(path)

    def load_checkpoint(self, path: str | os.PathLike[str], env: gym.Env | None = None) -> None:
        """Restore a state saved by :meth:`save_checkpoint` (pass the env to resume on).

        Anything but a checkpoint of this searcher is a :class:`CheckpointError`.
        """
        if env is not None:
            self.env = env
        state = read_checkpoint(path)
        check_searcher(state.meta, self.name)
        try:
            self.load_state_dict(state)
        except CheckpointError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            reason = f"no {exc}" if isinstance(exc, KeyError) else one_line(exc)
            raise CheckpointError(f"checkpoint {path} is damaged: {reason}") from None


def _hook(callback: Any, name: str) -> Any:
    """``callback``'s method ``name``, or a no-op: every hook of a callback is optional
    (a plain object with some of :class:`SearchCallback`'s methods is a callback too)."""
    return getattr(callback, name, None) or (lambda *args: None)


def check_searcher(meta: dict[str, Any], name: str) -> None:
    """A :class:`CheckpointError` unless the checkpoint was made by searcher ``name``."""
    if meta.get("searcher") != name:
        raise CheckpointError(
            f"checkpoint was made by searcher {meta.get('searcher')!r}, not {name!r}"
        )
