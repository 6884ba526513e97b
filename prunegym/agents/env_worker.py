"""The process that hosts one environment for the parallel workers (a Ray actor).

:class:`EnvWorker` is a plain class (this module imports no Ray): Ray runs it as an
actor (:func:`~prunegym.agents.ray_cluster.spawn_workers`), the tests may call it in
process. It builds its environment once from a factory and then serves two callers:

- the worker pool plays whole episodes from given actions (:meth:`EnvWorker.play`);
- :class:`~prunegym.agents.ray_vec_env.RayVecEnv` steps it in lockstep with SB3's
  auto-reset. The driver keeps the truth (which episode, how many steps, the attributes
  it set) and sends its expectation (:class:`Sync`) with every call; a worker whose
  state differs (its process died and Ray restarted it with a fresh env) answers
  :class:`Resync` instead of acting, and the driver restores it (:class:`EnvState`:
  the episode's reset arguments and actions so far) before asking again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Sync:
    """What the driver believes the worker's state is: the episode ``token`` (None:
    no episode to check), the steps taken in it and how many attributes were set."""

    token: int | None
    t: int
    version: int


@dataclass(frozen=True)
class EnvState:
    """Everything needed to rebuild a worker's state on a fresh env."""

    token: int | None
    seed: int | None
    options: Mapping[str, Any] | None
    actions: tuple[np.ndarray, ...]
    attrs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Resync:
    """The answer of a worker whose state is not the driver's (it was restarted)."""

    pid: int


@dataclass(frozen=True)
class EpisodeOutcome:
    """One whole episode played from a given action sequence.

    ``actions`` are the actions as played (clipped to [-1, 1]), ``infos`` the step
    infos (the last is the terminal info), ``reward`` the last step's reward.
    ``index`` is the candidate's position in its batch; ``seconds`` and ``pid``
    (the worker process) say how and where it ran and take no part in equality.
    """

    index: int
    actions: tuple[float, ...]
    infos: tuple[dict[str, Any], ...]
    reward: float
    seconds: float = field(compare=False)
    pid: int = field(compare=False)

    @property
    def terminal_info(self) -> dict[str, Any]:
        return self.infos[-1]

    @property
    def sparsities(self) -> list[float]:
        """The sparsity each step applied (``info["sparsity"]``; the action when the
        env reports none)."""
        return [float(i.get("sparsity", a)) for a, i in zip(self.actions, self.infos, strict=True)]


class EnvWorker:
    """Builds ``env_fn()`` once and plays it (see the module docstring)."""

    def __init__(self, env_fn: Callable[[], gym.Env], threads: int | None = None) -> None:
        if threads is not None:
            import torch

            torch.set_num_threads(int(threads))
        self._env: gym.Env | None = None
        self._build_error: Exception | None = None
        try:
            self._env = env_fn()
        except Exception as exc:  # kept: every call raises it (an actor that fails to
            self._build_error = exc  # build would die and hide the error's type)
        self.token: int | None = None
        self.t = 0
        self.version = 0

    @property
    def env(self) -> gym.Env:
        if self._env is None:
            assert self._build_error is not None
            raise self._build_error
        return self._env

    # about the worker ---------------------------------------------------------------
    def pid(self) -> int:
        return os.getpid()

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        """The env's spaces (raises the env factory's error if it failed)."""
        return self.env.observation_space, self.env.action_space

    # whole episodes (worker pool) -----------------------------------------------------
    def play(
        self,
        index: int,
        actions: Sequence[float],
        seed: int | None = None,
        per_unit: str | None = None,
    ) -> EpisodeOutcome:
        """Reset (with ``seed``) and play the episode.

        ``per_unit`` None: ``actions`` holds one action per step, and the episode must
        end exactly at the last one. ``"actions"`` / ``"sparsities"``: ``actions`` holds
        one value per unit of the game; each step plays the value of the unit it decides
        (``info["index"]`` / ``info["next_index"]``: units with a single level take no
        step), as an action or as the action giving that sparsity
        (``action_for_sparsity``), exactly as the serial searchers play a candidate.
        """
        if per_unit not in (None, "actions", "sparsities"):
            raise ValueError(f"per_unit must be None, 'actions' or 'sparsities', got {per_unit!r}")
        start = time.perf_counter()
        self.token = None  # a lockstep episode in progress is gone
        _, info = self.env.reset(seed=seed)
        played: list[float] = []
        infos: list[dict[str, Any]] = []
        reward, done = 0.0, False
        unit = int(info.get("index", 0))
        for step, given in enumerate(actions):
            if done:
                break
            a = given if per_unit is None else self._unit_action(actions[unit], per_unit)
            value = float(np.clip(float(np.asarray(a, dtype=np.float64).reshape(-1)[0]), -1, 1))
            _, r, terminated, truncated, info = self.env.step(np.array([value], np.float32))
            played.append(value)
            infos.append(dict(info))
            reward, done = float(r), bool(terminated or truncated)
            unit = int(info.get("next_index", step + 1))
        if not done or (per_unit is None and len(played) != len(actions)):
            raise ValueError(
                f"the episode must end exactly at the last action: {len(actions)} action(s) "
                f"given, the episode {'ended' if done else 'had not ended'} after {len(played)}"
            )
        return EpisodeOutcome(index, tuple(played), tuple(infos), reward,
                              time.perf_counter() - start, os.getpid())  # fmt: skip

    def _unit_action(self, value: float, per_unit: str) -> float:
        if per_unit == "actions":
            return float(value)
        from prunegym.envs.contract import game_of

        return float(game_of(self.env).action_for_sparsity(float(value)))

    # lockstep (RayVecEnv) ---------------------------------------------------------------
    def _in_sync(self, expect: Sync) -> bool:
        if expect.version != self.version:
            return False
        return expect.token is None or (expect.token, expect.t) == (self.token, self.t)

    def reset(
        self, expect: Sync, token: int, seed: int | None, options: Mapping[str, Any] | None
    ) -> tuple[Any, dict[str, Any]] | Resync:
        """Start episode ``token`` with ``env.reset(seed=..., options=...)``."""
        if not self._in_sync(expect):
            return Resync(os.getpid())
        obs, info = self.env.reset(seed=seed, **({"options": dict(options)} if options else {}))
        self.token, self.t = token, 0
        return obs, info

    def step(self, expect: Sync, action: np.ndarray) -> tuple | Resync:
        """One step with SB3's conventions: ``(obs, reward, done, info, reset_info)``;
        at the end of an episode ``info["terminal_observation"]`` holds the last
        observation, the env is reset and the next episode is ``token + 1``."""
        if not self._in_sync(expect) or self.token is None:
            return Resync(os.getpid())
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = bool(terminated or truncated)
        info["TimeLimit.truncated"] = bool(truncated and not terminated)
        reset_info: dict[str, Any] = {}
        self.t += 1
        if done:
            info["terminal_observation"] = obs
            obs, reset_info = self.env.reset()
            self.token, self.t = self.token + 1, 0
        return obs, reward, done, info, reset_info

    def restore(self, state: EnvState) -> None:
        """Rebuild the driver's state: set its attributes again, then reset as the
        episode was reset and replay its actions (they must not end it)."""
        for name, value in state.attrs:
            setattr(self.env, name, value)
        self.version = len(state.attrs)
        self.token, self.t = None, 0
        if state.token is None:
            return
        options = {"options": dict(state.options)} if state.options else {}
        self.env.reset(seed=state.seed, **options)
        for i, action in enumerate(state.actions):
            _, _, terminated, truncated, _ = self.env.step(action)
            if terminated or truncated:
                raise RuntimeError(
                    f"replaying the episode on a restarted worker ended it at step {i + 1} "
                    f"of {len(state.actions)}: the env is not determined by its reset seed "
                    "and actions"
                )
        self.token, self.t = state.token, len(state.actions)

    def get_attr(self, expect: Sync, name: str) -> Any:
        if not self._in_sync(expect):
            return Resync(os.getpid())
        return self.env.get_wrapper_attr(name)

    def set_attr(self, expect: Sync, name: str, value: Any) -> Resync | None:
        if not self._in_sync(expect):
            return Resync(os.getpid())
        setattr(self.env, name, value)
        self.version += 1
        return None

    def env_method(
        self, expect: Sync, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        if not self._in_sync(expect):
            return Resync(os.getpid())
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def is_wrapped(self, expect: Sync, wrapper_class: type[gym.Wrapper]) -> bool | Resync:
        if not self._in_sync(expect):
            return Resync(os.getpid())
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
