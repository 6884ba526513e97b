"""Shared pieces of the Ray tests: a tiny env factory, a fault injector, a fixture.

Ray's workers cannot import modules from tests/, so the fixture registers this module
to be pickled by value: the factories and wrappers below travel with the work.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from conftest import make_model
from test_env import FAST, tiny_data

from prunegym.envs import CHANNEL_ENV_ID


def tiny_env_fn(**kwargs: Any) -> Callable[[], gym.Env]:
    """A picklable factory of the tiny channel-pruning env (4 units, 32 reward images)."""
    options = {"ratio": 0.5, "evaluator_options": FAST, **kwargs}
    model = make_model("smallcnn", in_channels=1)
    return functools.partial(gym.make, CHANNEL_ENV_ID, model=model, data=tiny_data(), **options)


class KillOnce(gym.Wrapper):
    """SIGKILLs its own process right after step ``at_step`` of its ``episode``-th
    episode (counting from 1) - once in all processes: the first to create ``marker``."""

    def __init__(self, env: gym.Env, marker: str, at_step: int, episode: int = 1) -> None:
        super().__init__(env)
        self.marker, self.at_step, self.episode = marker, at_step, episode
        self._episodes = 0
        self._t = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._episodes += 1
        self._t = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, ...]:
        out = self.env.step(action)
        self._t += 1
        if (self._episodes, self._t) == (self.episode, self.at_step) and claim(self.marker):
            os.kill(os.getpid(), signal.SIGKILL)
        return out


def claim(marker: str) -> bool:
    """True for the first caller in any process (creates ``marker``)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def square_or_die(item: tuple[int, str]) -> tuple[int, int]:
    """``x * x`` and the process id; the first task given 2 kills its process instead,
    and a negative ``x`` is an error."""
    x, marker = item
    if x < 0:
        raise ValueError(f"negative: {x}")
    if x == 2 and claim(marker):
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x, os.getpid()


def _wrapped(env_fn: Callable[[], gym.Env], wrapper: type[gym.Wrapper], **kw: Any) -> gym.Env:
    return wrapper(env_fn(), **kw)


def killing_env_fn(env_fn: Callable[[], gym.Env], marker: str, at_step: int, episode: int = 1):
    """``env_fn`` whose env kills its process once (see :class:`KillOnce`)."""
    return functools.partial(_wrapped, env_fn, KillOnce, marker=marker, at_step=at_step,
                             episode=episode)  # fmt: skip


class SlowWhen(gym.Wrapper):
    """Sleeps ``seconds`` after the last step of an episode whose first action was
    ``first_action``: makes one candidate finish after those submitted later."""

    def __init__(self, env: gym.Env, first_action: float, seconds: float) -> None:
        super().__init__(env)
        self.first_action, self.seconds = first_action, seconds
        self._first: float | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._first = None
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, ...]:
        if self._first is None:
            self._first = float(np.asarray(action).reshape(-1)[0])
        out = self.env.step(action)
        if out[2] and self._first == self.first_action:
            time.sleep(self.seconds)
        return out


def slow_env_fn(env_fn: Callable[[], gym.Env], first_action: float, seconds: float):
    """``env_fn`` whose episodes starting with ``first_action`` end ``seconds`` late."""
    return functools.partial(_wrapped, env_fn, SlowWhen, first_action=first_action,
                             seconds=seconds)  # fmt: skip


class CountingFactory:
    """Wraps a factory and counts (in this process) how often it was pickled."""

    pickled = 0

    def __init__(self, env_fn: Callable[[], gym.Env]) -> None:
        self.env_fn = env_fn

    def __call__(self) -> gym.Env:
        return self.env_fn()

    def __reduce__(self) -> tuple[Any, ...]:
        CountingFactory.pickled += 1
        return (CountingFactory, (self.env_fn,))


def play_serial(env: gym.Env, actions: Sequence[float]) -> tuple[tuple, tuple, float]:
    """One episode in this process, as the serial searchers play it:
    (actions played, step infos, final reward)."""
    env.reset(seed=0)
    played, infos, reward = [], [], 0.0
    for a in actions:
        value = float(np.clip(a, -1.0, 1.0))
        _, r, terminated, truncated, info = env.step(np.array([value], dtype=np.float32))
        played.append(value)
        infos.append(info)
        reward = float(r)
    assert terminated and not truncated
    return tuple(played), tuple(infos), reward


def summary(actions: Sequence[float], infos: Sequence[dict], reward: float) -> tuple:
    """What must agree between two plays of one candidate (no timings, no cache flags)."""
    last = infos[-1]
    return (
        tuple(actions),
        reward,
        tuple(float(i["sparsity"]) for i in infos),
        tuple(sorted(last["metrics"].items())),
        last["policy"].to_json(),
    )


def comparable_info(info: dict[str, Any]) -> dict[str, Any]:
    """A step info without what may differ between two runs (timings, cache flags)."""
    out = {k: v for k, v in info.items() if k not in ("seconds", "evaluation")}
    if "policy" in out:
        out["policy"] = out["policy"].to_json()
    return out


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray instance with 2 CPUs for the module."""
    import ray
    import ray.cloudpickle

    from prunegym.agents.ray_cluster import init_ray

    this = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(this)
    init_ray(None, num_workers=2, resources_per_worker={"num_cpus": 1})
    yield
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(this)
