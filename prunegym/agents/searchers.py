"""Searchers: one interface for the RL agents and the baselines they must beat.

``searcher.search(env, episodes) -> SearchResult(best_policy, history)``. Every
searcher plays the same environment, so every candidate goes through the same action
wall and the same evaluator; a comparison is only honest with the same ``episodes``.

- ``uniform``: one sparsity for every unit, the smallest that meets the budget (solved
  by bisection on the env's analytic cost when it offers one, else by bisection over
  played episodes); deterministic, so it stops once solved.
- ``random``: uniform random actions in [-1, 1] through the action wall.
- ``evolution``: a (mu + 1) evolutionary search over per-unit actions: uniform
  crossover of two elite parents plus Gaussian mutation whose scale decays.
- ``ddpg`` / ``td3`` / ``sac`` / ``ppo``: :class:`RLSearcher` around
  :func:`~prunegym.agents.factory.make_agent`.

A searcher's whole state (history, RNG states, agent, replay buffer) is saved by
:meth:`Searcher.save_checkpoint` at safe points and restored by
:meth:`Searcher.load_checkpoint`; a resumed search continues exactly where it stopped.
"""

from __future__ import annotations

import inspect
import io
import math
import os
import pickle
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from prunegym.agents.callbacks import SearchCallback
from prunegym.agents.episodes import (
    action_for_sparsity,
    check_action_space,
    episode_length,
    play_episode,
    record_from_infos,
    uniform_meets_budget,
    unit_names,
)
from prunegym.agents.factory import ALGOS, make_agent, noise_sigma
from prunegym.agents.results import EpisodeRecord, SearchResult, best_record
from prunegym.utils.files import atomic_write_bytes

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed (corrupt, or made by another searcher)."""


class Searcher:
    """Base class: the episode bookkeeping, callbacks, stop requests and checkpoints."""

    name = "searcher"

    def __init__(self, env: gym.Env | None = None, seed: int = 0) -> None:
        self.env = env
        self.seed = int(seed)
        self.history: list[EpisodeRecord] = []
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
    ) -> SearchResult:
        """Evaluate up to ``episodes`` episodes in total (a resumed search counts the
        episodes it already has) and return the best policy and the whole history."""
        env = env if env is not None else self.env
        if env is None:
            raise ValueError("search() needs an environment")
        if int(episodes) < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        check_action_space(env)
        self.env = env
        self.unit_names = unit_names(env)
        self.stop_requested = False
        self._callbacks = list(callbacks)
        for cb in self._callbacks:
            cb.on_search_start(self)
        if len(self.history) < int(episodes):
            self._run(env, int(episodes))
        result = self.result()
        for cb in self._callbacks:
            cb.on_search_end(self, result)
        return result

    def result(self) -> SearchResult:
        best = self.best
        return SearchResult(None if best is None else best.policy, list(self.history),
                            list(self.unit_names))  # fmt: skip

    @property
    def best(self) -> EpisodeRecord | None:
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
        for cb in self._callbacks:
            cb.on_episode(self, record)

    def _safe_point(self) -> None:
        for cb in self._callbacks:
            cb.on_safe_point(self)

    def _reset_seed(self) -> int | None:
        """The seed of the env's first reset (later resets continue its RNG)."""
        if self.history:
            self._restore_env_rng()
            return None
        return self.seed

    def _restore_env_rng(self) -> None:
        if self._restored_env_rng is not None and self.env is not None:
            _set_generator_state(self.env.unwrapped, self._restored_env_rng)
            self._restored_env_rng = None

    # checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        base = self.env.unwrapped if self.env is not None else None
        return {
            "format": CHECKPOINT_FORMAT,
            "searcher": self.name,
            "seed": self.seed,
            "history": list(self.history),
            "unit_names": list(self.unit_names),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "env": _generator_state(base),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"checkpoint format {state.get('format')} is not supported")
        if state.get("searcher") != self.name:
            raise CheckpointError(
                f"checkpoint was made by searcher {state.get('searcher')!r}, not {self.name!r}"
            )
        self.seed = int(state["seed"])
        self.history = list(state["history"])
        self.unit_names = list(state["unit_names"])
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        self._restored_env_rng = rng["env"]

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write the whole state to ``path`` atomically (a crash leaves the old one)."""
        state = self.state_dict()
        path = Path(path)
        atomic_write_bytes(path, lambda fh: pickle.dump(state, fh, protocol=4))
        return path

    def load_checkpoint(self, path: str | os.PathLike, env: gym.Env | None = None) -> None:
        """Restore a state saved by :meth:`save_checkpoint` (pass the env to resume on)."""
        if env is not None:
            self.env = env
        try:
            with open(path, "rb") as fh:
                state = pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
        self.load_state_dict(state)


def _generator_state(obj: Any) -> dict[str, Any] | None:
    gen = getattr(obj, "_np_random", None)
    if isinstance(gen, np.random.Generator):
        return gen.bit_generator.state
    return None


def _set_generator_state(obj: Any, state: dict[str, Any] | None) -> None:
    if state is None:
        return
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    obj._np_random = np.random.Generator(bit_generator)


# baselines ------------------------------------------------------------------------------
class _EpisodicSearcher(Searcher):
    """A searcher that proposes whole action sequences, one per episode."""

    def __init__(self, env: gym.Env | None = None, seed: int = 0) -> None:
        super().__init__(env, seed)
        self.rng = np.random.default_rng(self.seed)

    def propose(self, n: int) -> np.ndarray:
        raise NotImplementedError

    def observe(self, actions: np.ndarray, record: EpisodeRecord) -> None:
        pass

    def _run(self, env: gym.Env, episodes: int) -> None:
        n = episode_length(env)
        while len(self.history) < episodes and not self.stop_requested:
            actions = np.asarray(self.propose(n), dtype=np.float64)
            rec = play_episode(env, lambda _obs, t, a=actions: a[t], len(self.history),
                               seed=self._reset_seed())  # fmt: skip
            self.observe(actions, rec)
            self._record(rec)
            self._safe_point()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["searcher_rng"] = self.rng.bit_generator.state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["searcher_rng"]


class RandomSearcher(_EpisodicSearcher):
    """Uniform random actions through the env's action wall."""

    name = "random"

    def propose(self, n: int) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, n)


class UniformSearcher(_EpisodicSearcher):
    """One sparsity for every unit: the smallest that meets the budget.

    With an env whose cost can be computed without evaluating (see
    :func:`~prunegym.agents.episodes.uniform_meets_budget`) the sparsity is found by
    bisection on that cost and evaluated once. Otherwise the bisection plays episodes
    with a constant action and keeps the smallest one the action wall did not have to
    change (at most
    ``episodes`` evaluations). A uniform policy is deterministic: the search stops
    once it is solved instead of re-evaluating it.
    """

    name = "uniform"

    def __init__(self, env: gym.Env | None = None, seed: int = 0, tol: float = 1e-4) -> None:
        super().__init__(env, seed)
        self.tol = float(tol)
        self.solved = False
        self.bracket = (-1.0, 1.0)  # actions: (wall-clipped, uniform)

    def _run(self, env: gym.Env, episodes: int) -> None:
        if self.solved:
            return
        base = env.unwrapped
        n = episode_length(env)
        meets = uniform_meets_budget(env)
        if meets is not None and hasattr(base, "action_for_sparsity"):
            lo, hi = float(getattr(base, "min_sparsity", 0.0)), float(base.max_sparsity)
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if meets(mid) else (mid, hi)
            self._play(env, np.array([action_for_sparsity(env, hi, t) for t in range(n)]))
        else:
            while len(self.history) < episodes and not self.stop_requested:
                lo, hi = self.bracket
                if hi - lo <= self.tol:
                    break
                mid = (lo + hi) / 2 if self.history else hi
                rec = self._play(env, np.full(n, mid), safe_point=False)
                uniform = max(rec.sparsities) - min(rec.sparsities) <= 1e-6
                self.bracket = (lo, mid) if uniform else (mid, hi)
                self._safe_point()
            if self.stop_requested and len(self.history) < episodes:
                return
        self.solved = True

    def _play(self, env: gym.Env, actions: np.ndarray, safe_point: bool = True) -> EpisodeRecord:
        rec = play_episode(env, lambda _obs, t: actions[t], len(self.history),
                           seed=self._reset_seed())  # fmt: skip
        self._record(rec)
        if safe_point:
            self._safe_point()
        return rec

    def result(self) -> SearchResult:
        # the answer is the uniform policy that met the budget: the last feasible one
        result = super().result()
        uniform = [r for r in self.history if max(r.sparsities) - min(r.sparsities) <= 1e-6]
        if uniform:
            best = min(uniform, key=lambda r: r.sparsities[0])
            result.best_policy = best.policy
        return result

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "solved": self.solved, "bracket": self.bracket}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.solved = bool(state["solved"])
        self.bracket = tuple(state["bracket"])


class EvolutionSearcher(_EpisodicSearcher):
    """A steady-state (mu + 1) evolutionary search over per-unit actions.

    The first ``population`` candidates are uniform random; after that each candidate
    is a uniform crossover of two parents drawn from the ``elite`` best so far, plus
    Gaussian mutation of scale ``sigma * decay**generation`` (``generation`` =
    candidates after the initial population, divided by ``population``); ``elite``
    defaults to ``min(4, population)``. The genotype
    of an evaluated candidate is what the action wall actually applied (Lamarckian), so
    the elite always holds feasible policies.
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

    def observe(self, actions: np.ndarray, record: EpisodeRecord) -> None:
        base = self.env.unwrapped if self.env is not None else None
        if base is not None and hasattr(base, "action_for_sparsity"):
            genotype = np.array([action_for_sparsity(self.env, s, t)
                                 for t, s in enumerate(record.sparsities)])  # fmt: skip
        else:
            genotype = np.asarray(actions, dtype=np.float64)
        self.archive.append((genotype, float(record.reward)))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "archive": list(self.archive)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.archive = list(state["archive"])


# reinforcement learning -------------------------------------------------------------------
class _SB3Bridge(BaseCallback):
    """Turns SB3's per-step callback hooks into the searcher's episodes and safe points."""

    def __init__(self, searcher: RLSearcher, episodes: int) -> None:
        super().__init__()
        self.searcher = searcher
        self.episodes = episodes
        self._steps: list[tuple[float, dict[str, Any]]] = []
        self._t0 = time.perf_counter()
        self._stop = False

    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()

    def _on_rollout_start(self) -> None:
        # after the previous update and before the next episode's first step: the
        # agent, its buffer and the history agree, so the state may be saved here
        if not self._steps:
            self.searcher._safe_point()
            if self.searcher.stop_requested:
                self._stop = True

    def _on_step(self) -> bool:
        if self._stop:
            return False
        infos, dones = self.locals["infos"], self.locals["dones"]
        actions = self.locals.get("clipped_actions", self.locals.get("actions"))
        self._steps.append((float(np.asarray(actions).reshape(-1)[0]), dict(infos[0])))
        if bool(dones[0]):
            s = self.searcher
            now = time.perf_counter()
            rec = record_from_infos(s.env, len(s.history), [a for a, _ in self._steps],
                                    [i for _, i in self._steps],
                                    float(np.asarray(self.locals["rewards"]).reshape(-1)[0]),
                                    now - self._t0)  # fmt: skip
            self._t0 = now
            self._steps = []
            s._record(rec)
            if len(s.history) >= self.episodes and isinstance(self.model, OnPolicyAlgorithm):
                return False
        return True


class RLSearcher(Searcher):
    """A Stable-Baselines3 agent (:data:`ALGOS`) learning the pruning game.

    ``agent_options`` go to :func:`make_agent`; pass ``agent`` to use one already built.
    ``search`` trains for ``episodes`` episodes; every episode played is one candidate
    in the history, exploration included.
    """

    def __init__(
        self,
        env: gym.Env | None = None,
        seed: int = 0,
        algo: str = "ddpg",
        agent: BaseAlgorithm | None = None,
        **agent_options: Any,
    ) -> None:
        super().__init__(env, seed)
        if algo not in ALGOS:
            raise ValueError(f"unknown agent {algo!r}; known: {', '.join(sorted(ALGOS))}")
        self.algo = algo
        self.name = algo
        self.agent = agent
        self.agent_options = dict(agent_options)
        self._resumed = False

    def make(self, env: gym.Env) -> BaseAlgorithm:
        if self.agent is None:
            self.agent = make_agent(self.algo, env, seed=self.seed, **self.agent_options)
        return self.agent

    def exploration_sigma(self) -> float:
        return math.nan if self.agent is None else noise_sigma(self.agent)

    def _run(self, env: gym.Env, episodes: int) -> None:
        agent = self.make(env)
        n = episode_length(env)
        remaining = episodes - len(self.history)
        if self._resumed:
            self._resume_env(agent)
        agent.learn(remaining * n, callback=_SB3Bridge(self, episodes),
                    reset_num_timesteps=not self.history)  # fmt: skip
        self._resumed = False

    def _resume_env(self, agent: BaseAlgorithm) -> None:
        # the fresh env must be reset (SB3 does not, since the agent has a last obs);
        # the pruning env's reset is deterministic, then its RNG continues as saved
        agent._last_obs = agent.env.reset()
        agent._last_episode_starts = np.ones((agent.env.num_envs,), dtype=bool)
        self._restore_env_rng()

    def save(self, path: str | os.PathLike) -> None:
        """Write the agent as an SB3 zip (``agent.zip``)."""
        if self.agent is None:
            raise ValueError("no agent to save: search first")
        self.agent.save(path)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.agent is not None:
            buf = io.BytesIO()
            self.agent.save(buf)
            state["agent"] = buf.getvalue()
            state["action_space_rng"] = self.agent.action_space.np_random.bit_generator.state
            if getattr(self.agent, "replay_buffer", None) is not None:
                rb = io.BytesIO()
                self.agent.save_replay_buffer(rb)
                state["replay_buffer"] = rb.getvalue()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("searcher") != self.name:
            raise CheckpointError(
                f"checkpoint was made by searcher {state.get('searcher')!r}, not {self.name!r}"
            )
        if "agent" in state:
            if self.env is None:
                raise CheckpointError("resuming an RL search needs the environment")
            agent = ALGOS[self.algo].load(io.BytesIO(state["agent"]), env=self.env, device="cpu")
            if "replay_buffer" in state:
                agent.load_replay_buffer(io.BytesIO(state["replay_buffer"]))
            agent.action_space.np_random.bit_generator.state = state["action_space_rng"]
            self.agent = agent
            self._resumed = True
        super().load_state_dict(state)  # global RNG states last: loading reseeds them


#: Baseline searcher name -> class (the RL agents are the names of :data:`ALGOS`).
BASELINES: dict[str, type[Searcher]] = {
    "uniform": UniformSearcher,
    "random": RandomSearcher,
    "evolution": EvolutionSearcher,
}

SEARCHERS: tuple[str, ...] = tuple(BASELINES) + tuple(ALGOS)


def make_searcher(name: str, env: gym.Env | None = None, seed: int = 0, **options: Any) -> Searcher:
    """A searcher by name: a baseline (``uniform``, ``random``, ``evolution``) or an
    RL agent (``ddpg``, ``td3``, ``sac``, ``ppo``; ``options`` go to :func:`make_agent`)."""
    if name in BASELINES:
        cls = BASELINES[name]
        known = [p for p in inspect.signature(cls.__init__).parameters if p not in
                 ("self", "env", "seed")]  # fmt: skip
        for key in options:
            if key not in known:
                raise ValueError(f"searcher {name!r} has no option {key!r}; its options: "
                                 f"{', '.join(known) or 'none'}")  # fmt: skip
        return cls(env, seed=seed, **options)
    if name in ALGOS:
        return RLSearcher(env, seed=seed, algo=name, **options)
    raise ValueError(f"unknown searcher {name!r}; known: {', '.join(SEARCHERS)}")
