"""CMA-ES (Hansen's ``cma`` package) as a searcher: a published black-box optimiser with
the same interface, evaluator and episode budget as every other searcher.

The genotype is the vector of per-unit actions in [-1, 1] (``cma``'s ``bounds``); each
action picks one of the levels the budget allows its unit, so every candidate is a
feasible policy. One candidate is one episode; ``cma`` is told a generation's fitness
(minus the reward) once all its candidates are played. When ``cma`` stops (a flat or
converged population), it restarts from the best candidate so far with ``sigma0``.

``cma`` draws its samples from a NumPy Generator of the searcher (its ``randn`` option),
never from the global RNG. Its state is not data, so a checkpoint holds the searcher's
own ask/tell history (candidates and fitness, as arrays): loading one builds a fresh
``cma`` and replays the history, which must ask exactly the saved candidates again.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from prunegym.agents.baselines import EpisodicSearcher
from prunegym.agents.checkpoint import CheckpointError, CheckpointState
from prunegym.agents.results import EpisodeRecord


class CMAESSearcher(EpisodicSearcher):
    """CMA-ES over per-unit actions (see the module docstring).

    ``sigma0`` is the initial step size in action units (the range is 2 wide; CMA-ES's
    advice is a quarter to a sixth of it), ``popsize`` the candidates per generation
    (default ``cma``'s ``4 + 3 ln(units)``); the search starts at 0, the middle of what
    the budget allows each unit.
    """

    name = "cmaes"

    def __init__(
        self,
        env: gym.Env | None = None,
        seed: int = 0,
        sigma0: float = 0.5,
        popsize: int | None = None,
    ) -> None:
        super().__init__(env, seed)
        if not sigma0 > 0 or (popsize is not None and int(popsize) < 2):
            raise ValueError("cmaes needs sigma0 > 0 and popsize >= 2")
        self.sigma0 = float(sigma0)
        self.popsize = None if popsize is None else int(popsize)
        self.candidates: list[np.ndarray] = []  # every candidate played, in order
        self.fitness: list[float] = []  # minus its reward
        self.restarts = 0
        self._es: Any = None
        self._generation: list[np.ndarray] = []
        self._scores: list[float] = []
        self._asked = 0  # candidates of the generation handed out
        self._randn = np.random.default_rng([self.seed, 1])

    # ask and tell ---------------------------------------------------------------------
    def _start(self, x0: np.ndarray) -> None:
        import cma  # type: ignore[import-untyped]  # no type hints; imported on use (seconds)

        rng = self._randn
        options = {
            "bounds": [-1.0, 1.0],
            "randn": lambda *shape: rng.standard_normal(shape),
            "verbose": -9,
            "verb_log": 0,
            "verb_disp": 0,
        }
        if self.popsize is not None:
            options["popsize"] = self.popsize
        self._es = cma.CMAEvolutionStrategy(x0, self.sigma0, options)

    def _ask(self, n: int) -> np.ndarray:
        if self._es is None:
            self._start(np.zeros(n))
        if len(self._scores) == len(self._generation):  # the last generation is told
            self._generation = [np.clip(np.asarray(x, float), -1, 1) for x in self._es.ask()]
            self._scores, self._asked = [], 0
        if self._asked == len(self._generation):
            raise RuntimeError("cmaes: every candidate of the generation is asked, none told")
        self._asked += 1
        return self._generation[self._asked - 1].copy()

    def _tell(self, candidate: np.ndarray, fitness: float) -> None:
        self.candidates.append(np.asarray(candidate, dtype=np.float64).copy())
        self.fitness.append(float(fitness))
        self._scores.append(float(fitness))
        if len(self._scores) < len(self._generation):
            return
        self._es.tell(self._generation, self._scores)
        if self._es.stop():
            self.restarts += 1
            self._start(self.candidates[int(np.argmin(self.fitness))])
            self._generation, self._scores, self._asked = [], [], 0

    # the searcher ---------------------------------------------------------------------
    def propose(self, n: int) -> np.ndarray:
        return self._ask(n)

    def propose_batch(self, n: int, k: int) -> list[np.ndarray]:
        """Up to ``k`` candidates, all of one generation (fewer at its end)."""
        first = self._ask(n)
        left = len(self._generation) - self._asked
        return [first] + [self._ask(n) for _ in range(min(k - 1, left))]

    def observe(self, candidate: np.ndarray, record: EpisodeRecord) -> None:
        self._tell(candidate, -float(record.reward))

    def exploration_sigma(self) -> float:
        return float("nan") if self._es is None else float(self._es.sigma)

    # checkpoints: the ask/tell history, replayed ------------------------------------
    def state_dict(self) -> CheckpointState:
        state = super().state_dict()
        n = len(self.candidates[0]) if self.candidates else 0
        state.arrays["cma_candidates"] = np.array(self.candidates, np.float64).reshape(-1, n)
        state.arrays["cma_fitness"] = np.array(self.fitness, np.float64)
        return state

    def load_state_dict(self, state: CheckpointState) -> None:
        candidates = state.array("cma_candidates", np.float64)
        fitness = state.array("cma_fitness", np.float64)
        if candidates.ndim != 2 or len(candidates) != len(fitness):
            raise ValueError("the cmaes history's candidates and fitness do not match")
        super().load_state_dict(state)
        self.candidates, self.fitness, self.restarts = [], [], 0
        self._es, self._generation, self._scores, self._asked = None, [], [], 0
        self._randn = np.random.default_rng([self.seed, 1])
        for saved, f in zip(candidates, fitness, strict=True):
            asked = self._ask(candidates.shape[1])
            if not np.array_equal(asked, saved):
                raise CheckpointError(
                    f"replaying the cmaes history diverged at candidate {len(self.candidates)} "
                    "(another cma version or seed?)"
                )
            self._tell(saved, float(f))
