"""RayVecEnv: SB3's VecEnv semantics on Ray actors, agents on it, restarted workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from ray_helpers import (
    CountingFactory,
    comparable_info,
    killing_env_fn,
    local_ray,  # noqa: F401 (fixture)
    play_serial,
    tiny_env_fn,
)
from stable_baselines3 import DDPG
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecEnv

pytest.importorskip("ray")

from prunegym.agents.buffers import IDLE_KEY, EpisodeCreditReplayBuffer
from prunegym.agents.env_worker import EnvState, EnvWorker, Resync, Sync
from prunegym.agents.ray_vec_env import RayVecEnv
from prunegym.agents.rounds import EpisodeRounds
from prunegym.envs import CHANNEL_ENV_ID


def assert_same_step(got: tuple, want: tuple) -> None:
    """Two VecEnv step results agree (infos without timings or cache flags)."""
    (obs, rew, done, infos), (obs2, rew2, done2, infos2) = got, want
    np.testing.assert_array_equal(obs, obs2)
    np.testing.assert_array_equal(rew, rew2)
    np.testing.assert_array_equal(done, done2)
    for a, b in zip(infos, infos2, strict=True):
        assert set(a) == set(b)
        if "terminal_observation" in b:
            np.testing.assert_array_equal(a["terminal_observation"], b["terminal_observation"])
        strip = {"terminal_observation"}
        assert comparable_info({k: v for k, v in a.items() if k not in strip}) == comparable_info(
            {k: v for k, v in b.items() if k not in strip}
        )


def lockstep(venv: VecEnv, ref: VecEnv, actions: np.ndarray, on_step: Any = None) -> int:
    """Step both with the same actions; returns the episodes finished per env."""
    np.testing.assert_array_equal(venv.reset(), ref.reset())
    assert venv.unwrapped.reset_infos == ref.unwrapped.reset_infos
    finished = 0
    for k, action in enumerate(actions):
        if on_step is not None:
            on_step(k)
        got, want = venv.step(action), ref.step(action)
        assert_same_step(got, want)
        assert venv.unwrapped.reset_infos == ref.unwrapped.reset_infos
        finished += int(want[2][0])
    return finished


@pytest.mark.usefixtures("local_ray")
def test_steps_like_sb3s_dummy_vec_env_and_puts_the_factory_once() -> None:
    env_fn = tiny_env_fn()
    factory = CountingFactory(env_fn)
    CountingFactory.pickled = 0
    venv = VecCheckNan(RayVecEnv([factory] * 2, threads_per_worker=1), raise_exception=True)
    ref = DummyVecEnv([env_fn] * 2)
    try:
        assert CountingFactory.pickled == 1  # one copy in the object store for both actors
        n = venv.get_attr("n_units")[0]
        assert venv.get_attr("n_units") == ref.get_attr("n_units") == [n, n]
        for wrapper in (gym.wrappers.OrderEnforcing, Monitor):
            assert venv.env_is_wrapped(wrapper) == ref.env_is_wrapped(wrapper)
        assert venv.env_method("cost_ratio", [0.5] * n) == ref.env_method("cost_ratio", [0.5] * n)
        venv.seed(3)
        ref.seed(3)
        actions = np.random.default_rng(0).uniform(-1, 1, (2 * n + 1, 2, 1)).astype(np.float32)
        assert lockstep(venv, ref, actions) == 2  # two whole episodes, auto-reset included
        venv.set_attr("tag", "x", indices=[1])
        assert venv.get_attr("tag", indices=1) == ["x"]
        assert venv.env_method("cost_ratio", [0.5] * n, indices=[0]) == [ref.env_method(
            "cost_ratio", [0.5] * n, indices=[0])[0]]  # fmt: skip
    finally:
        venv.close()
        ref.close()
    assert venv.venv.closed


@pytest.mark.usefixtures("local_ray")
def test_ddpg_learns_on_two_workers_exactly_as_on_dummy_vec_env() -> None:
    env_fn = tiny_env_fn()
    env_kwargs = {**env_fn.keywords, "render_mode": None}  # make_vec_env would ask rgb_array
    n = env_fn().unwrapped.n_units
    agents = {}
    for cls, kwargs in ((RayVecEnv, {"threads_per_worker": 1}), (DummyVecEnv, {})):
        venv = make_vec_env(CHANNEL_ENV_ID, n_envs=2, seed=0, env_kwargs=env_kwargs,
                            vec_env_cls=cls, vec_env_kwargs=kwargs)  # fmt: skip
        assert venv.env_is_wrapped(Monitor) == [True, True]
        # lockstep episodes of n steps: a round of 2 episodes every n vec steps;
        # learning starts after the first round, one update per round
        agent = DDPG("MlpPolicy", venv, gamma=1.0, learning_starts=2 * n, train_freq=(n, "step"),
                     gradient_steps=-1, batch_size=8, policy_kwargs={"net_arch": [16, 16]},
                     seed=0, device="cpu")  # fmt: skip
        agent.learn(total_timesteps=3 * 2 * n)
        venv.close()
        assert agent._episode_num == 6 and len(agent.ep_info_buffer) == 6
        assert agent.replay_buffer.size() * 2 == 6 * n
        agents[cls] = agent
    ray_agent, ref_agent = agents[RayVecEnv], agents[DummyVecEnv]
    assert [e["r"] for e in ray_agent.ep_info_buffer] == [e["r"] for e in ref_agent.ep_info_buffer]
    for p, q in zip(ray_agent.policy.parameters(), ref_agent.policy.parameters(), strict=True):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


@pytest.mark.usefixtures("local_ray")
def test_restarted_workers_replay_their_episode_and_attributes(tmp_path: Path) -> None:
    env_fn = tiny_env_fn()
    marker = tmp_path / "killed"
    # the first env to take step 2 dies inside it; the other is killed between steps
    venv = RayVecEnv([killing_env_fn(env_fn, str(marker), at_step=2)] * 2, threads_per_worker=1)
    ref = DummyVecEnv([env_fn] * 2)
    try:
        n = venv.get_attr("n_units")[0]
        venv.set_attr("tag", "x")
        first = venv.worker_pids()

        def kill_the_other(k: int) -> None:
            if k == 3:
                assert marker.exists()
                now = venv.worker_pids()
                survivor = next(i for i in range(2) if now[i] == first[i])
                os.kill(now[survivor], signal.SIGKILL)

        actions = np.random.default_rng(1).uniform(-1, 1, (n + 2, 2, 1)).astype(np.float32)
        assert lockstep(venv, ref, actions, on_step=kill_the_other) == 1
        last = venv.worker_pids()
        assert all(a != b for a, b in zip(first, last, strict=True))  # both restarted
        assert venv.get_attr("tag") == ["x", "x"]  # set again on the restarted envs
    finally:
        venv.close()
        ref.close()


@pytest.mark.usefixtures("local_ray")
def test_rounds_keep_the_episodes_together_and_the_buffer_drops_waiting_rows() -> None:
    env_fn = tiny_env_fn()
    venv = EpisodeRounds(RayVecEnv([env_fn] * 2, threads_per_worker=1))
    ref = env_fn()  # -1 everywhere: the wall skips the last unit (3 steps); +1: 4 steps
    final = {a: float(np.float32(play_serial(ref, [a] * n)[2])) for a, n in ((-1.0, 3), (1.0, 4))}
    buf = EpisodeCreditReplayBuffer(100, venv.observation_space, venv.action_space,
                                    device="cpu", n_envs=2, baseline_alpha=None)  # fmt: skip
    try:
        obs = venv.reset()
        first = obs.copy()
        rows = []
        for size, actions, steps in ((2, [-1.0, 1.0], 4), (1, [-1.0, 1.0], 3)):
            venv.round_size = size
            for k in range(steps):
                new, rewards, dones, infos = venv.step(np.array([[a] for a in actions]))
                buf.add(obs, new, np.array([[a] for a in actions]), rewards, dones, infos)
                rows.append((rewards.tolist(), dones.tolist(), [IDLE_KEY in i for i in infos]))
                obs = new
                assert venv.round_over == (k == steps - 1)  # only at the end of the round
        assert rows == [  # env 0 ends after 3 steps and waits; env 1 sits out round 2
            ([0, 0], [False, False], [False, False]),
            ([0, 0], [False, False], [False, False]),
            ([final[-1.0], 0], [True, False], [False, False]),
            ([0, final[1.0]], [False, True], [True, False]),
            ([0, 0], [False, False], [False, True]),
            ([0, 0], [False, False], [False, True]),
            ([final[-1.0], 0], [True, False], [False, True]),
        ]
        np.testing.assert_array_equal(obs[1], first[1])  # the fresh episode's first obs
        assert buf.size() == 3 + 4 + 3 and buf.pending == 0  # idle rows are no transitions
        stored = buf.rewards[: buf.size(), 0].tolist()
        assert stored == [final[-1.0]] * 3 + [final[1.0]] * 4 + [final[-1.0]] * 3  # credited
    finally:
        venv.close()


def test_a_fresh_worker_asks_for_a_replay_and_replays_exactly() -> None:
    env_fn = tiny_env_fn()
    worker, fresh = EnvWorker(env_fn), EnvWorker(env_fn)
    a = [np.array([x], dtype=np.float32) for x in (0.3, -0.5, 0.9, 0.1)]
    worker.reset(Sync(None, 0, 0), 7, 0, None)
    worker.step(Sync(7, 0, 0), a[0])
    assert isinstance(fresh.step(Sync(7, 1, 0), a[1]), Resync)  # it never saw episode 7
    assert isinstance(worker.step(Sync(7, 1, 1), a[1]), Resync)  # an attribute it missed
    assert isinstance(worker.get_attr(Sync(6, 1, 0), "n_units"), Resync)  # another episode
    fresh.restore(EnvState(7, 0, None, (a[0],), ()))
    for t in (1, 2, 3):
        got, want = fresh.step(Sync(7, t, 0), a[t]), worker.step(Sync(7, t, 0), a[t])
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1:3] == want[1:3]
    assert got[2] and (fresh.token, fresh.t) == (8, 0)  # auto-reset into episode 8
    with pytest.raises(RuntimeError, match="ended it at step 4"):
        fresh.restore(EnvState(9, 0, None, tuple(a), ()))
    with pytest.raises(ValueError, match="end exactly at the last action"):
        fresh.play(0, [0.0] * 5)
    outcome = fresh.play(3, [0.2, 0.2, 0.2, 0.2])
    assert outcome.index == 3 and outcome.sparsities == [i["sparsity"] for i in outcome.infos]


def test_a_worker_whose_env_fails_to_build_raises_that_error_on_every_call() -> None:
    broken = tiny_env_fn(ratio=2.0)
    worker = EnvWorker(broken)  # an actor whose __init__ raised would die, hiding the error
    for call in (worker.spaces, lambda: worker.play(0, [0.0])):
        with pytest.raises(ValueError, match="target ratio must be in"):
            call()
