"""Searchers: every agent and baseline returns a policy inside the budget, the same
seed gives the same history, an interrupted search resumes to the same history, and
DDPG with AMC's settings really learns."""

from __future__ import annotations

import numpy as np
import pytest

from prunegym.agents import (
    SEARCHERS,
    CheckpointCallback,
    CheckpointError,
    SearchCallback,
    SyntheticPruningEnv,
    make_searcher,
)

FAST = {
    "ddpg": {"warmup_episodes": 2},
    "td3": {"warmup_episodes": 2},
    "sac": {"warmup_episodes": 2},
    "ppo": {"rollout_episodes": 2},
}


@pytest.mark.parametrize("name", SEARCHERS)
def test_every_searcher_returns_a_policy_inside_the_budget(name):
    env = SyntheticPruningEnv(num_units=5, ratio=0.5)
    result = make_searcher(name, env, seed=0, **FAST.get(name, {})).search(env, episodes=6)
    assert 1 <= result.episodes <= 6
    assert result.episodes == 6 or name == "uniform"
    assert result.best_policy is not None
    s = result.best_policy.as_array(_Table(env))
    assert env.cost_ratio(s) <= 0.5 + 1e-9
    for rec in result.history:
        assert rec.metrics["macs_ratio"] <= 0.5 + 1e-9
        assert len(rec.sparsities) == 5 and rec.seconds >= 0
    assert result.best_reward == max(r.reward for r in result.history)
    csv = result.to_csv()
    assert csv.splitlines()[0].startswith("episode,reward,accuracy")
    assert len(csv.splitlines()) == result.episodes + 1


class _Table:
    """Just enough of a LayerTable for PruningPolicy.as_array."""

    def __init__(self, env):
        self.names, self.granularity, self.signature = env.unit_names, "channel", None


def test_uniform_meets_the_budget_exactly():
    env = SyntheticPruningEnv(num_units=6, ratio=0.4)
    result = make_searcher("uniform", env).search(env, episodes=50)
    s = result.best_policy.as_array(_Table(env))
    assert np.ptp(s) <= 1e-6
    assert env.cost_ratio(s) == pytest.approx(0.4, abs=1e-6)
    assert result.episodes == 1  # deterministic: evaluated once


def test_uniform_by_bisection_over_episodes():
    env = _Opaque(SyntheticPruningEnv(num_units=6, ratio=0.4))
    result = make_searcher("uniform", env).search(env, episodes=30)
    s = np.array(result.best.sparsities) if result.best_policy is None else None
    best = min((r for r in result.history if np.ptp(r.sparsities) <= 1e-6),
               key=lambda r: r.sparsities[0])  # fmt: skip
    assert result.best_policy.sparsities == pytest.approx(
        dict(zip(env.unwrapped.unit_names, best.sparsities, strict=True))
    )
    assert best.metrics["macs_ratio"] == pytest.approx(0.4, abs=1e-3)
    assert s is None and result.episodes <= 30


class _Opaque(SyntheticPruningEnv.__mro__[1]):  # a gymnasium.Wrapper-free stand-in
    """The synthetic env without its analytic cost (forces the episode bisection)."""

    def __init__(self, env):
        self._env = env
        self.action_space, self.observation_space = env.action_space, env.observation_space
        self.num_units, self.unit_names = env.num_units, env.unit_names

    def reset(self, *, seed=None, options=None):
        return self._env.reset(seed=seed, options=options)

    def step(self, action):
        return self._env.step(action)


@pytest.mark.parametrize("name", ["random", "evolution", "ddpg", "ppo"])
def test_same_seed_same_history(name):
    runs = []
    for _ in range(2):
        env = SyntheticPruningEnv(num_units=4)
        res = make_searcher(name, env, seed=7, **FAST.get(name, {})).search(env, episodes=6)
        runs.append([r.comparable() for r in res.history])
    assert runs[0] == runs[1]


class _StopAfter(SearchCallback):
    def __init__(self, n):
        self.n = n

    def on_episode(self, searcher, record):
        if len(searcher.history) >= self.n:
            searcher.request_stop()


@pytest.mark.parametrize("name", ["random", "evolution", "uniform", "ddpg", "td3", "sac"])
def test_interrupted_search_resumes_to_the_same_history(name, tmp_path):
    opts = {**FAST.get(name, {}), **({"population": 4, "elite": 2} if name == "evolution" else {})}
    env = _env_for(name)
    full = make_searcher(name, env, seed=3, **opts).search(env, episodes=9)
    ckpt = tmp_path / "ckpt.pkl"
    env = _env_for(name)
    first = make_searcher(name, env, seed=3, **opts)
    part = first.search(env, episodes=9, callbacks=[_StopAfter(5), CheckpointCallback(ckpt, 2)])
    assert part.episodes < full.episodes or name == "uniform"
    env = _env_for(name)
    again = make_searcher(name, env, seed=3, **opts)
    again.load_checkpoint(ckpt, env=env)
    assert len(again.history) == part.episodes  # no completed episode lost
    resumed = again.search(env, episodes=9)
    assert [r.comparable() for r in resumed.history] == [r.comparable() for r in full.history]


def _env_for(name):
    env = SyntheticPruningEnv(num_units=4)
    return _Opaque(env) if name == "uniform" else env


def test_checkpoint_of_another_searcher_is_refused(tmp_path):
    env = SyntheticPruningEnv(num_units=3)
    s = make_searcher("random", env, seed=0)
    s.search(env, episodes=2)
    s.save_checkpoint(tmp_path / "c.pkl")
    with pytest.raises(CheckpointError, match="random"):
        make_searcher("evolution", env).load_checkpoint(tmp_path / "c.pkl")
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError):
        make_searcher("random", env).load_checkpoint(tmp_path / "bad.pkl")
    with pytest.raises(ValueError, match="unknown searcher"):
        make_searcher("annealing", env)


def _hard_env():
    rng = np.random.default_rng(0)
    sens = np.where(rng.random(10) < 0.5, 0.03, 1.0)
    return SyntheticPruningEnv(num_units=10, ratio=0.5, sensitivity=sens, reward_scale=20.0)


@pytest.mark.slow  # the same claim on the real PruningEnv runs by default (test_searchers_real_env)
def test_ddpg_learns_better_than_random_search_with_the_same_episodes():
    """A known-optimum game (same observation, action wall and action mapping as the
    real env): after 160 episodes (40 warm-up), DDPG with AMC's settings ends at least
    20% closer to the optimum than random search with the same episodes and seed."""
    env = _hard_env()
    optimum = env.optimum()[1] * env.reward_scale
    gaps = {}
    for name in ("random", "ddpg"):
        opts = {"warmup_episodes": 40} if name == "ddpg" else {}
        result = make_searcher(name, env, seed=0, **opts).search(env, episodes=160)
        gaps[name] = optimum - result.best_reward
    assert gaps["ddpg"] < 0.8 * gaps["random"], gaps
