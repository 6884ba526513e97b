"""RayVecEnv: an SB3 ``VecEnv`` whose environments live in Ray actors.

It behaves like SB3's ``SubprocVecEnv`` (same auto-reset: the last observation of a
finished episode is in ``info["terminal_observation"]`` and the returned observation
is the next episode's first; seeds and options apply at the next ``reset()``), with
Ray's actors instead of pipes, so the N environments may sit on other machines. All
N step in lockstep, so their terminal evaluations run at the same time.

Faults: the driver keeps, per env, the current episode's reset seed and options, its
actions so far and the attributes set through :meth:`RayVecEnv.set_attr`. A worker
whose process died is restarted by Ray with a fresh env; its next call notices it
(:class:`~prunegym.agents.env_worker.Resync`), the driver replays the episode on it and
the call is made again, so the step returns what it would have returned. The replay is
exact for environments whose episode is determined by the reset seed and the actions
(PruningEnv draws no random numbers); side effects of ``env_method`` are not replayed.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np
import ray
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from prunegym.agents.env_worker import EnvState, Resync, Sync
from prunegym.agents.ray_cluster import (
    MAX_RESTARTS,
    MAX_TASK_RETRIES,
    kill_workers,
    reraise_cause,
    spawn_workers,
    wait_ready,
)


@dataclass
class _EnvLog:
    """The driver's record of one worker's state."""

    token: int | None = None
    seed: int | None = None
    options: Mapping[str, Any] | None = None
    actions: list[np.ndarray] = field(default_factory=list)
    attrs: list[tuple[str, Any]] = field(default_factory=list)

    def sync(self, episode: bool = True) -> Sync:
        """The expected state; without ``episode`` only the attributes are checked."""
        return Sync(self.token if episode else None, len(self.actions), len(self.attrs))

    def state(self) -> EnvState:
        return EnvState(self.token, self.seed, self.options, tuple(self.actions),
                        tuple(self.attrs))  # fmt: skip

    def start(self, token: int, seed: int | None, options: Mapping[str, Any] | None) -> None:
        self.token, self.seed, self.options, self.actions = token, seed, options, []


class RayVecEnv(VecEnv):
    """N environments, one per Ray actor, stepped in lockstep (see the module docs).

    ``env_fns`` are picklable callables returning a Gymnasium env; each distinct one
    goes through Ray's object store once (``[make_env] * n`` shares one copy of the
    model and data among all actors). ``threads_per_worker`` defaults to the per-worker
    ``num_cpus`` or this machine's cores divided by N. Ray must be initialised
    (:func:`~prunegym.agents.ray_cluster.init_ray`).
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        *,
        threads_per_worker: int | None = None,
        resources_per_worker: Mapping[str, float] | None = None,
        max_restarts: int = MAX_RESTARTS,
        max_task_retries: int = MAX_TASK_RETRIES,
    ) -> None:
        self.waiting = False
        self.closed = False
        self._actors, self._factory_refs = spawn_workers(
            list(env_fns),
            threads_per_worker=threads_per_worker,
            resources_per_worker=resources_per_worker,
            max_restarts=max_restarts,
            max_task_retries=max_task_retries,
        )
        self._logs = [_EnvLog() for _ in self._actors]
        self._tokens = itertools.count(1)
        self._pending: list[Any] = []
        self._actions: np.ndarray | None = None
        super().__init__(len(self._actors), *wait_ready(self._actors))

    # calls with resynchronisation ------------------------------------------------------
    def _gather(
        self, indices: Sequence[int], refs: Sequence[Any], again: Callable, episode: bool = True
    ) -> list[Any]:
        """Results of ``refs`` (one per env index); an env that answers Resync is
        restored (with its episode so far unless ``episode`` is False) and asked again
        with ``again(i)`` (a new ObjectRef)."""
        results = self._get(list(refs))
        lost = [k for k, r in enumerate(results) if isinstance(r, Resync)]
        if lost:
            retry = []
            for k in lost:
                i = indices[k]
                state = self._logs[i].state()
                self._actors[i].restore.remote(state if episode else replace(state, token=None))
                retry.append(again(i))
            for k, r in zip(lost, self._get(retry), strict=True):
                if isinstance(r, Resync):
                    raise RuntimeError(f"env {indices[k]} lost its state again after a restore")
                results[k] = r
        return results

    @staticmethod
    def _get(refs: list[Any]) -> list[Any]:
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            reraise_cause(exc)
            raise

    def _call(self, method: str, indices: VecEnvIndices, *args: Any) -> list[Any]:
        idx = list(self._get_indices(indices))

        def ask(i: int) -> Any:
            return getattr(self._actors[i], method).remote(self._logs[i].sync(), *args)

        return self._gather(idx, [ask(i) for i in idx], ask)

    # VecEnv API ---------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        idx = list(range(self.num_envs))
        tokens = [next(self._tokens) for _ in idx]

        def ask(i: int) -> Any:
            sync = self._logs[i].sync(episode=False)
            return self._actors[i].reset.remote(sync, tokens[i], self._seeds[i], self._options[i])

        results = self._gather(idx, [ask(i) for i in idx], ask, episode=False)
        for i, log in enumerate(self._logs):
            log.start(tokens[i], self._seeds[i], self._options[i] or None)
        obs, self.reset_infos = [r[0] for r in results], [r[1] for r in results]
        self._reset_seeds()
        self._reset_options()
        return _stack(obs, self.observation_space)

    def step_async(self, actions: np.ndarray) -> None:
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        self._pending = self._submit(range(self.num_envs), actions)
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None
        results = self._collect(range(self.num_envs), self._pending)
        self.waiting, self._pending = False, []
        obs, rewards, dones, infos = results
        return (_stack(obs, self.observation_space), np.array(rewards, dtype=np.float32),
                np.array(dones, dtype=bool), infos)  # fmt: skip

    def step_envs(
        self, indices: Sequence[int], actions: np.ndarray
    ) -> tuple[list[Any], list[float], list[bool], list[dict[str, Any]]]:
        """Step only the envs ``indices`` (the others stay where they are), with SB3's
        auto-reset; per env in ``indices``: observations, rewards, dones and infos.
        :class:`~prunegym.agents.rounds.EpisodeRounds` plays rounds of episodes with it."""
        idx = [int(i) for i in indices]
        if len(actions) != len(idx):
            raise ValueError(f"expected {len(idx)} actions, got {len(actions)}")
        if not idx:
            return [], [], [], []
        return self._collect(idx, self._submit(idx, actions))

    def _submit(self, idx: Sequence[int], actions: np.ndarray) -> list[Any]:
        if any(self._logs[i].token is None for i in idx):
            raise RuntimeError("call reset() before step()")
        self._actions = np.array(actions, copy=True)
        return [self._actors[i].step.remote(self._logs[i].sync(), a)
                for i, a in zip(idx, self._actions, strict=True)]  # fmt: skip

    def _collect(self, idx: Sequence[int], refs: list[Any]) -> tuple[list, list, list, list]:
        assert self._actions is not None
        action_of = dict(zip(idx, self._actions, strict=True))

        def ask(i: int) -> Any:
            return self._actors[i].step.remote(self._logs[i].sync(), action_of[i])

        results = self._gather(list(idx), refs, ask)
        obs, rewards, dones, infos, reset_infos = (list(x) for x in zip(*results, strict=True))
        for k, i in enumerate(idx):
            log = self._logs[i]
            log.actions.append(action_of[i])
            if dones[k]:  # as SB3's: reset_infos[i] is env i's latest reset info
                assert log.token is not None
                log.start(log.token + 1, None, None)
                self.reset_infos[i] = reset_infos[k]
        return obs, rewards, dones, infos

    def close(self) -> None:
        if self.closed:
            return
        if self.waiting:
            ray.wait(self._pending, num_returns=len(self._pending))
        kill_workers(self._actors)
        self._factory_refs = []
        self.closed = True

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._call("get_attr", indices, attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        idx = list(self._get_indices(indices))
        self._call("set_attr", idx, attr_name, value)
        for i in idx:
            self._logs[i].attrs.append((attr_name, value))

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        return self._call("env_method", indices, method_name, method_args, method_kwargs)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return self._call("is_wrapped", indices, wrapper_class)

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"The render mode is {self.render_mode}, but this method assumes it is "
                "`rgb_array` to obtain images.",
                stacklevel=2,
            )
            return [None] * self.num_envs
        return self.env_method("render")

    def worker_pids(self) -> list[int]:
        """The process id of each env's worker."""
        return ray.get([a.pid.remote() for a in self._actors])


def _stack(obs: list[Any], space: spaces.Space) -> VecEnvObs:
    """Stack per-env observations as SB3 does (a dict of arrays for a Dict space)."""
    if isinstance(space, spaces.Dict):
        return {k: np.stack([o[k] for o in obs]) for k in space.spaces}
    if isinstance(space, spaces.Tuple):
        return tuple(np.stack([o[j] for o in obs]) for j in range(len(space.spaces)))
    return np.stack(obs)
