"""Agents: AMC's noise, the credit-assignment buffer, and the factory's defaults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

from prunegym.agents import ALGOS, EpisodeCreditReplayBuffer, TruncatedNormalNoise, make_agent
from prunegym.envs import SyntheticPruningEnv


def test_noise_schedule_follows_amc():
    noise = TruncatedNormalNoise(sigma=0.5, decay=0.95, warmup_episodes=3)
    for _ in range(3):
        assert noise.sigma == 0.5  # no decay during the warm-up
        noise.reset()
    assert noise.sigma == 0.5
    for _ in range(60):
        noise.reset()
    assert noise.sigma == pytest.approx(0.5 * 0.95**60)
    assert 0.015 < noise.sigma < 0.025  # "about 0.02 after 60 episodes"
    stop = TruncatedNormalNoise(sigma=0.5, stop_after=2)
    stop.reset(), stop.reset()
    assert stop.sigma == 0.0 and np.all(stop() == 0.0)
    floor = TruncatedNormalNoise(sigma=0.5, decay=0.5, sigma_min=0.1)
    floor.reset(), floor.reset(), floor.reset()
    assert floor.sigma == 0.0  # 0.0625 < sigma_min: exploration stops


def test_noise_is_truncated_to_the_bounds_and_seeded():
    noise = TruncatedNormalNoise(sigma=0.5, seed=1)
    actions = np.full((4000, 1), 0.9)
    out = noise.perturb(actions, -1.0, 1.0)
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert (out == 1.0).mean() < 0.01  # truncated, not clipped: no mass on the bound
    assert 0.5 < out.mean() < 0.9
    a = TruncatedNormalNoise(sigma=0.3, seed=5)()
    b = TruncatedNormalNoise(sigma=0.3, seed=5)()
    assert a.shape == (1,) and a.dtype == np.float32 and np.array_equal(a, b)
    with pytest.raises(ValueError):
        TruncatedNormalNoise(decay=0.0)


def test_default_exploration_has_amcs_relative_width_and_a_settable_decay():
    """AMC: sigma 0.5 on its [0, 1] keep-ratio actions; ours span [-1, 1]: sigma 1.0."""
    env = SyntheticPruningEnv(n_units=4)
    noise = make_agent("ddpg", env, seed=0, warmup_episodes=1).action_noise
    assert (noise.sigma0, noise.decay) == (1.0, 0.95)
    ours = noise.perturb(np.zeros((20000, 1)), -1.0, 1.0)  # from the middle of the range
    amc = TruncatedNormalNoise(sigma=0.5, seed=1).perturb(np.full((20000, 1), 0.5), 0.0, 1.0)
    relative = (ours.std() / 2.0) / (amc.std() / 1.0)  # std over the range's width
    assert relative == pytest.approx(1.0, abs=0.03)
    slower = make_agent("ddpg", env, noise={"decay": 0.99}).action_noise
    assert (slower.sigma0, slower.decay) == (1.0, 0.99)


def _buffer(**kw):
    box = spaces.Box(0.0, 1.0, (2,), np.float32)
    act = spaces.Box(-1.0, 1.0, (1,), np.float32)
    return EpisodeCreditReplayBuffer(50, box, act, device="cpu", **kw)


def _episode(buf, final, n=3):
    for t in range(n):
        o = np.full((1, 2), t, np.float32)
        buf.add(o, o + 1, np.array([[0.1 * t]]), np.array([final if t == n - 1 else 0.0]),
                np.array([t == n - 1]), [{}])  # fmt: skip


def test_buffer_credits_every_transition_with_the_final_reward():
    buf = _buffer(baseline_alpha=None)
    buf.add(np.zeros((1, 2)), np.ones((1, 2)), np.zeros((1, 1)), np.array([0.0]),
            np.array([False]), [{}])  # fmt: skip
    assert buf.size() == 0 and buf.pending == 1  # held back until the episode ends
    buf.add(np.ones((1, 2)), np.ones((1, 2)), np.zeros((1, 1)), np.array([2.5]),
            np.array([True]), [{}])  # fmt: skip
    assert buf.size() == 2 and buf.pending == 0
    assert np.all(buf.rewards[:2] == 2.5)
    plain = _buffer(episode_credit=False, baseline_alpha=None)
    _episode(plain, 4.0)
    assert plain.rewards[:3, 0].tolist() == [0.0, 0.0, 4.0]


def test_buffer_subtracts_a_moving_average_baseline():
    buf = _buffer(baseline_alpha=0.5)
    _episode(buf, 1.0)
    _episode(buf, 3.0)
    np.random.seed(0)
    s1 = buf.sample(16)
    raw1 = s1.rewards + buf.baseline
    assert buf.baseline == pytest.approx(float(raw1.mean()))  # first batch: its own mean
    s2 = buf.sample(16)
    b1 = float(raw1.mean())
    raw2 = s2.rewards.numpy() + buf.baseline
    assert buf.baseline == pytest.approx(0.5 * b1 + 0.5 * raw2.mean(), rel=1e-5)


def test_ddpg_defaults_are_amcs():
    env = SyntheticPruningEnv(n_units=4)
    agent = make_agent("ddpg", env, seed=0, warmup_episodes=2)
    assert type(agent) is ALGOS["ddpg"]
    assert agent.tau == 0.01 and agent.gamma == 1.0 and agent.batch_size == 64
    assert agent.buffer_size == 100 * 4 and agent.warmup_episodes == 2  # episodes, not steps
    assert agent.learning_starts == 0
    assert agent.train_freq.frequency == 1 and agent.train_freq.unit.value == "episode"
    assert isinstance(agent.replay_buffer, EpisodeCreditReplayBuffer)
    assert isinstance(agent.action_noise, TruncatedNormalNoise)
    assert agent.action_noise.sigma0 == 1.0 and agent.action_noise.decay == 0.95
    sizes = [m.out_features for m in agent.actor.mu if isinstance(m, torch.nn.Linear)]
    assert sizes == [300, 300, 1]
    qsizes = [m.out_features for m in agent.critic.qf0 if isinstance(m, torch.nn.Linear)]
    assert qsizes == [300, 300, 1]
    agent.learn(4 * 4)  # warm-up + updates
    assert agent.actor.optimizer.param_groups[0]["lr"] == 1e-4
    assert agent.critic.optimizer.param_groups[0]["lr"] == 1e-3
    assert agent.replay_buffer.baseline is not None


def test_amc_additions_switch_off():
    env = SyntheticPruningEnv(n_units=4)
    agent = make_agent("ddpg", env, seed=0, noise=False, episode_credit=False,
                       baseline_alpha=None, critic_learning_rate=None)  # fmt: skip
    assert agent.action_noise is None
    assert type(agent.replay_buffer).__name__ == "ReplayBuffer"
    assert agent.critic_learning_rate is None
    custom = make_agent("ddpg", env, noise={"sigma": 0.2, "decay": 0.9}, batch_size=8,
                        policy_kwargs={"net_arch": [16]})  # fmt: skip
    assert custom.action_noise.sigma0 == 0.2 and custom.batch_size == 8
    with pytest.raises(ValueError, match="unknown agent"):
        make_agent("dqn", env)


class _Actions(BaseCallback):
    """Records the action of every step the agent takes and the episodes finished
    before it (SB3's public callback API)."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[float] = []
        self.episode: list[int] = []
        self._done = 0

    def _on_step(self) -> bool:
        self.actions.append(float(np.asarray(self.locals["buffer_actions"]).reshape(-1)[0]))
        self.episode.append(self._done)
        self._done += int(np.asarray(self.locals["dones"]).reshape(-1)[0])
        return True


class _SpyNoise(TruncatedNormalNoise):
    """AMC's noise that remembers every use: (episodes, action in, action out)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[int, float, float]] = []

    def __call__(self):
        out = super().__call__()
        self.calls.append((self.episodes, 0.0, float(out[0])))
        return out

    def perturb(self, action, low=-1.0, high=1.0):
        out = super().perturb(action, low, high)
        self.calls.append((self.episodes, float(action.reshape(-1)[0]), float(out.reshape(-1)[0])))
        return out


def test_warmup_plays_uniform_random_actions_without_noise():
    env = SyntheticPruningEnv(n_units=4)
    noise = _SpyNoise(sigma=0.5, warmup_episodes=50, seed=0)
    agent = make_agent("ddpg", env, seed=3, warmup_episodes=50, action_noise=noise)
    seen = _Actions()
    agent.learn(50 * 4, callback=seen)  # at least the warm-up (single-level units skip)
    warm = [a for a, e in zip(seen.actions, seen.episode, strict=True) if e < 50]
    assert len(warm) > 100 and seen.episode[-1] >= 49
    assert -1 <= min(warm) < -0.8 and 0.8 < max(warm) <= 1  # uniform
    assert abs(np.mean(warm)) < 0.15
    assert all(e >= 50 for e, _, _ in noise.calls)  # no noise in the warm-up


def test_after_the_warmup_actions_are_the_actors_perturbed_by_amc_noise():
    env = SyntheticPruningEnv(n_units=4)
    noise = _SpyNoise(sigma=0.5, decay=0.95, warmup_episodes=2, seed=0)
    agent = make_agent("ddpg", env, seed=0, warmup_episodes=2, action_noise=noise)
    seen = _Actions()
    agent.learn(4 * 4, callback=seen)  # 2 warm-up episodes, then 2 with the actor
    assert [episodes for episodes, _, _ in noise.calls] == [2] * 4 + [3] * 4
    assert seen.actions[8:] == [out for _, _, out in noise.calls]  # what the env got
    moved = [abs(out - a) for _, a, out in noise.calls]
    assert all(-1 <= out <= 1 for _, _, out in noise.calls) and max(moved) > 0.01
    assert noise.sigma == pytest.approx(0.5 * 0.95**2)  # decays once per episode after it


@pytest.mark.parametrize("name", ["td3", "sac"])
def test_critic_learning_rate_applies_to_td3_and_sac(name):
    env = SyntheticPruningEnv(n_units=3)
    agent = make_agent(name, env, seed=0, warmup_episodes=1, learning_rate=2e-4,
                       critic_learning_rate=3e-3)  # fmt: skip
    agent.learn(3 * 3)  # updates after the warm-up set the learning rates
    assert agent.actor.optimizer.param_groups[0]["lr"] == 2e-4
    assert agent.critic.optimizer.param_groups[0]["lr"] == 3e-3


def test_td3_sac_ppo_build():
    env = SyntheticPruningEnv(n_units=3)
    for name in ("td3", "sac", "ppo"):
        agent = make_agent(name, env, seed=0, warmup_episodes=1, rollout_episodes=2)
        assert type(agent) is ALGOS[name]
    assert make_agent("ppo", env, rollout_episodes=2).n_steps == 6


def _linear_sizes(net: torch.nn.Module) -> list[int]:
    return [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)]


@pytest.mark.parametrize("name", ["td3", "sac"])
def test_td3_and_sac_share_amcs_settings_for_one_terminal_reward(name):
    env = SyntheticPruningEnv(n_units=6)
    agent = make_agent(name, env, seed=0, warmup_episodes=1)
    assert (agent.gamma, agent.batch_size, agent.tau) == (1.0, 64, 0.01)  # not 0.99 / 256
    assert isinstance(agent.replay_buffer, EpisodeCreditReplayBuffer)
    assert agent.replay_buffer.episode_credit and agent.replay_buffer.baseline_alpha == 0.5
    assert agent.buffer_size == 100 * 6 and agent.warmup_episodes == 1
    assert agent.train_freq.unit.value == "episode" and agent.gradient_steps == -1
    assert _linear_sizes(agent.actor)[:2] == [300, 300]
    assert _linear_sizes(agent.critic.qf0) == [300, 300, 1]
    if name == "td3":
        assert agent.policy_delay == 2 and agent.target_policy_noise == 0.2
        assert agent.action_noise.sigma0 == 1.0
    else:
        assert agent.action_noise is None and agent.ent_coef == "auto"
    agent.learn(3 * 6)  # the warm-up episode, then updates
    assert agent.actor.optimizer.param_groups[0]["lr"] == 1e-4
    assert agent.critic.optimizer.param_groups[0]["lr"] == 1e-3


def test_ppo_credits_every_step_with_the_final_reward():
    env = SyntheticPruningEnv(n_units=6)
    agent = make_agent("ppo", env, seed=0, rollout_episodes=4)
    assert (agent.gamma, agent.gae_lambda) == (1.0, 1.0)  # not 0.99 / 0.95
    assert agent.n_steps == agent.batch_size == 4 * 6 and agent.n_epochs == 10
    std = agent.policy.log_std.exp().detach().numpy()
    assert std == pytest.approx([0.5])  # not SB3's 1.0: fewer actions clipped to the bounds
    assert _linear_sizes(agent.policy.mlp_extractor.policy_net) == [300, 300]
    assert _linear_sizes(agent.policy.mlp_extractor.value_net) == [300, 300]
    # lambda 1 and gamma 1: every step's return is the episode's final reward
    agent.learn(agent.n_steps)
    buf = agent.rollout_buffer
    ends = np.flatnonzero(buf.episode_starts.reshape(-1)[1:]) + 1  # first step of episodes
    first_episode = slice(0, int(ends[0]))
    returns = buf.returns.reshape(-1)[first_episode]
    assert returns == pytest.approx([returns[-1]] * len(returns))
