"""The baselines an RL agent must beat, with the same episode budget and evaluator.

- ``uniform``: one sparsity for every unit, the smallest that meets the budget after
  rounding (:func:`~prunegym.agents.episodes.uniform_sparsity`, no evaluation),
  evaluated once; deterministic, so it stops once solved.
- ``random``: per-unit sparsities drawn uniformly in ``[min_sparsity, max_sparsity]``,
  then scaled by one factor so the policy fills the budget
  (:func:`~prunegym.agents.episodes.fill_budget`: within one rounding step under it).
- ``random-raw``: uniform random actions in [-1, 1], one per step (what an RL agent's
  warm-up plays); its episodes usually end well under the budget.
- ``evolution``: a (mu + 1) evolutionary search over per-unit actions: uniform
  crossover of two elite parents plus Gaussian mutation whose scale decays.

``cmaes`` (:mod:`prunegym.agents.cmaes`) is the published black-box optimiser.

Batches: the episodic searchers propose ``k = min(batch_size, episodes left)``
candidates at a time, evaluate them (one after the other, or at the same time on a
:class:`~prunegym.agents.worker_pool.WorkerPool` given with
:meth:`EpisodicSearcher.use_workers`), record and observe all of them in proposal
order, then reach one safe point (a checkpoint) per batch. An episode's result depends
only on its candidate, so a fixed ``batch_size`` gives the same candidates and results
with any number of workers; ``batch_size`` 1 is the classic one-at-a-time search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from prunegym.agents.checkpoint import CheckpointState, generator_from_state, generator_state
from prunegym.agents.episodes import (
    fill_budget,
    play_episode,
    record_from_infos,
    uniform_sparsity,
)
from prunegym.agents.results import EpisodeRecord
from prunegym.agents.searcher import Searcher
from prunegym.envs.contract import PruningGame

Act = Callable[[np.ndarray, int], float]


def replay_actions(actions: Sequence[float] | np.ndarray) -> Act:
    """A policy that plays ``actions[unit]`` for each unit, whatever it observes."""
    return lambda _obs, unit: float(actions[unit])


def replay_sparsities(game: PruningGame, sparsities: Sequence[float] | np.ndarray) -> Act:
    """A policy that asks for ``sparsities[unit]`` for each unit (the action giving that
    unit the sparsity's rounded count, or the most the budget allows)."""
    return lambda _obs, unit: game.action_for_sparsity(float(sparsities[unit]))


class EpisodicSearcher(Searcher):
    """A searcher that proposes whole candidates (a vector, one value per unit), one
    episode each, in batches of ``batch_size`` (see the module docstring);
    :attr:`played_as` says how a vector is played (its values are ``"actions"`` or
    ``"sparsities"``)."""

    played_as = "actions"

    def __init__(self, env: gym.Env | None = None, seed: int = 0) -> None:
        super().__init__(env, seed)
        self.rng = np.random.default_rng(self.seed)
        self.batch_size = 1
        self.pool: Any = None  # a WorkerPool (prunegym.agents.worker_pool) or None

    def use_workers(self, pool: Any, batch_size: int | None = None) -> None:
        """Evaluate each batch on ``pool`` (a
        :class:`~prunegym.agents.worker_pool.WorkerPool` on envs like the search's;
        None: in this process), ``batch_size`` candidates at a time (None: unchanged)."""
        if batch_size is not None:
            if isinstance(batch_size, bool) or int(batch_size) < 1:
                raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
            self.batch_size = int(batch_size)
        self.pool = pool

    def propose(self, n: int) -> np.ndarray:
        raise NotImplementedError

    def propose_batch(self, n: int, k: int) -> list[np.ndarray]:
        """``k`` candidates proposed before any of them is observed."""
        return [np.asarray(self.propose(n), dtype=np.float64) for _ in range(k)]

    def act(self, candidate: np.ndarray) -> Act:
        if self.played_as == "sparsities":
            return replay_sparsities(self.game, candidate)
        return replay_actions(candidate)

    def observe(self, candidate: np.ndarray, record: EpisodeRecord) -> None:
        pass

    def _run(self, env: gym.Env, episodes: int) -> None:
        n = self.game.n_units
        while len(self.history) < episodes and not self.stop_requested:
            k = min(self.batch_size, episodes - len(self.history))
            batch = self.propose_batch(n, k)
            for candidate, rec in zip(batch, self._evaluate(env, batch), strict=True):
                self.observe(candidate, rec)
                self._record(rec)
            self._safe_point()

    def _evaluate(self, env: gym.Env, batch: list[np.ndarray]) -> list[EpisodeRecord]:
        """The records of the batch's episodes, in order (numbered after the history)."""
        first = len(self.history)
        if self.pool is None:
            return [play_episode(env, self.act(c), first + i, seed=self._reset_seed())
                    for i, c in enumerate(batch)]  # fmt: skip
        seeds = [self._reset_seed()] + [None] * (len(batch) - 1)
        outcomes = self.pool.evaluate_batch(batch, seeds, per_unit=self.played_as)
        return [record_from_infos(first + o.index, o.infos, o.seconds) for o in outcomes]

    def state_dict(self) -> CheckpointState:
        state = super().state_dict()
        state.meta["searcher_rng"] = generator_state(self.rng)
        return state

    def load_state_dict(self, state: CheckpointState) -> None:
        rng = generator_from_state(state.meta["searcher_rng"])
        super().load_state_dict(state)
        self.rng = rng


class RandomSearcher(EpisodicSearcher):
    """Uniform random sparsities, scaled to fill the budget (within one rounding step)."""

    name = "random"

    played_as = "sparsities"

    def propose(self, n: int) -> np.ndarray:
        game = self.game
        return fill_budget(game, self.rng.uniform(game.min_sparsity, game.max_sparsity, n))


class RawRandomSearcher(EpisodicSearcher):
    """Uniform random actions in [-1, 1] (the budget is usually not filled)."""

    name = "random-raw"

    def propose(self, n: int) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, n)


class UniformSearcher(Searcher):
    """One sparsity for every unit: the smallest that meets the budget, evaluated once.

    The sparsity is solved on the game's exact budget check (no evaluation); the wall
    then never limits it. A uniform policy is deterministic: the search stops once it
    is evaluated instead of re-evaluating it.
    """

    name = "uniform"

    def _run(self, env: gym.Env, episodes: int) -> None:
        if self.history:
            return  # solved
        game = self.game
        policy = np.full(game.n_units, uniform_sparsity(game))
        rec = play_episode(env, replay_sparsities(game, policy), len(self.history),
                           seed=self._reset_seed())  # fmt: skip
        self._record(rec)
        self._safe_point()


class EvolutionSearcher(EpisodicSearcher):
    """A steady-state (mu + 1) evolutionary search over per-unit actions.

    The first ``population`` candidates are uniform random; after that each candidate
    is a uniform crossover of two parents drawn from the ``elite`` best so far, plus
    Gaussian mutation of scale ``sigma * decay**generation`` (``generation`` =
    candidates after the initial population, divided by ``population``); ``elite``
    defaults to ``min(4, population)``. Actions pick levels inside what the budget
    allows, so every genotype is a feasible policy and is kept as played.
    """

    name = "evolution"

    def __init__(
        self,
        env: gym.Env | None = None,
        seed: int = 0,
        population: int = 16,
        elite: int | None = None,
        sigma: float = 0.3,
        decay: float = 0.9,
        sigma_min: float = 0.02,
    ) -> None:
        super().__init__(env, seed)
        elite = min(4, population) if elite is None else elite
        if population < 2 or not 1 <= elite <= population:
            raise ValueError("evolution needs population >= 2 and 1 <= elite <= population")
        self.population, self.elite = int(population), int(elite)
        self.sigma, self.decay, self.sigma_min = float(sigma), float(decay), float(sigma_min)
        self.archive: list[tuple[np.ndarray, float]] = []

    def mutation_scale(self) -> float:
        gen = max(0, len(self.archive) - self.population) / self.population
        return max(self.sigma_min, self.sigma * self.decay**gen)

    def exploration_sigma(self) -> float:
        return self.mutation_scale()

    def propose(self, n: int) -> np.ndarray:
        if len(self.archive) < self.population:
            return self.rng.uniform(-1.0, 1.0, n)
        ranked = sorted(self.archive, key=lambda g: -g[1])[: self.elite]
        i, j = self.rng.integers(0, len(ranked), 2)
        mask = self.rng.random(n) < 0.5
        child = np.where(mask, ranked[i][0], ranked[j][0])
        child = child + self.rng.normal(0.0, self.mutation_scale(), n)
        return np.clip(child, -1.0, 1.0)

    def observe(self, candidate: np.ndarray, record: EpisodeRecord) -> None:
        self.archive.append((candidate.copy(), float(record.reward)))

    def state_dict(self) -> CheckpointState:
        state = super().state_dict()
        n = len(self.archive[0][0]) if self.archive else 0
        genotypes = [g for g, _ in self.archive]
        state.arrays["archive_genotypes"] = np.array(genotypes, dtype=np.float64).reshape(-1, n)
        state.arrays["archive_rewards"] = np.array([r for _, r in self.archive], np.float64)
        return state

    def load_state_dict(self, state: CheckpointState) -> None:
        genotypes = state.array("archive_genotypes", np.float64)
        rewards = state.array("archive_rewards", np.float64)
        if genotypes.ndim != 2 or len(genotypes) != len(rewards):
            raise ValueError("the evolution archive's genotypes and rewards do not match")
        super().load_state_dict(state)
        self.archive = [(g.copy(), float(r)) for g, r in zip(genotypes, rewards, strict=True)]
