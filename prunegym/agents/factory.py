"""Stable-Baselines3 agents for the pruning game: AMC's DDPG, and TD3, SAC and PPO set
up for the same game.

The game has 10-60 steps per episode (at most one per unit) and one reward, at the last
step. SB3's defaults (gamma 0.99, batch 256, GAE lambda 0.95, a unit initial std) are
made for long episodes with dense rewards: they discount and shrink the credit of the
early units. Every agent here gets settings for short episodes with a terminal reward,
so that comparing algorithms compares algorithms:

================ =================== =================== =================== ===================
setting          ``ddpg`` (AMC)      ``td3``             ``sac``             ``ppo``
================ =================== =================== =================== ===================
credit           every transition    as DDPG             as DDPG             gamma 1, GAE
                 gets the episode's                                          lambda 1: each
                 final reward minus                                          step's advantage
                 a moving-average                                            is the final
                 baseline (alpha                                             reward minus
                 0.5); gamma 1                                               V(s_t)
batch            64                  64                  64                  the whole rollout
learning rates   1e-4 actor,         as DDPG             as DDPG (the        3e-4
                 1e-3 critic                             entropy coefficient
                                                         at the actor's)
networks         300-300             300-300             300-300             300-300 (policy
                                                                             and value)
target nets      tau 0.01            tau 0.01, policy    tau 0.01            --
                                     delay 2, target
                                     noise 0.2 (clip
                                     0.5)
exploration      truncated normal,   as DDPG             its own entropy     Gaussian policy,
                 sigma 1.0 (AMC's                        (automatic          initial std 0.5
                 0.5 of [0, 1]),                         coefficient), no    (std 1 would put a
                 x0.95 per episode                       added noise         third of the
                 after the warm-up                                           actions on the
                                                                             bounds)
warm-up          100 episodes of     as DDPG             as DDPG             --
                 uniform random
                 actions, no update
updates          at the end of each  as DDPG             as DDPG             10 epochs over
                 episode, one                                                each rollout of 8
                 gradient step per                                           episodes' steps
                 transition; replay
                 of 100 episodes
================ =================== =================== =================== ===================

All of it goes through SB3's extension points: ``policy_kwargs``, ``action_noise``,
``replay_buffer_class``/``replay_buffer_kwargs``, ``train_freq`` and small overrides in
a subclass (:mod:`prunegym.agents.sb3_internals`: the warm-up counts episodes, the noise
is truncated to the action bounds, the critic may have its own learning rate). Every
setting can be overridden by a keyword and every AMC addition switched off.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from prunegym.agents.buffers import EpisodeCreditReplayBuffer
from prunegym.agents.episodes import check_action_space
from prunegym.agents.noise import TruncatedNormalNoise, base_noise
from prunegym.agents.rounds import EpisodeRounds, set_rounds
from prunegym.agents.sb3_internals import AMCDDPG, AMCSAC, AMCTD3, finished_episodes
from prunegym.envs.contract import game_of

#: Algorithm name -> SB3 class. ``ALGOS[name].load(path, env=env)`` reloads an agent.
ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ddpg": AMCDDPG,
    "td3": AMCTD3,
    "sac": AMCSAC,
    "ppo": PPO,
}

OFF_POLICY = ("ddpg", "td3", "sac")

#: AMC's DDPG settings (He et al. 2018, and the authors' reference code), which TD3 and
#: SAC share.
AMC_DDPG = {
    "learning_rate": 1e-4,
    "critic_learning_rate": 1e-3,
    "tau": 0.01,
    "gamma": 1.0,
    "batch_size": 64,
    "policy_kwargs": {"net_arch": {"pi": [300, 300], "qf": [300, 300]}},
}

#: PPO for one terminal reward: no discount and no GAE shrinkage, a narrow initial policy.
PPO_SETTINGS = {
    "learning_rate": 3e-4,
    "gamma": 1.0,
    "gae_lambda": 1.0,
    "n_epochs": 10,
    "ent_coef": 0.0,
    "policy_kwargs": {
        "net_arch": {"pi": [300, 300], "vf": [300, 300]},
        "log_std_init": math.log(0.5),
    },
}

#: AMC's exploration noise in prunegym's action units. AMC draws keep ratios in [0, 1]
#: with sigma 0.5 (half the action range); prunegym's actions span [-1, 1], so the same
#: relative width is sigma 1.0. ``decay`` is per episode after the warm-up; any of it
#: can be set with ``noise={"sigma": ..., "decay": ...}``.
AMC_NOISE = {"sigma": 1.0, "decay": 0.95}


def agent_defaults(name: str) -> dict[str, Any]:
    """The SB3 keywords prunegym uses for ``name`` (before the episode-size options)."""
    if name not in ALGOS:
        raise ValueError(f"unknown agent {name!r}; known: {', '.join(sorted(ALGOS))}")
    return copy.deepcopy(AMC_DDPG if name in OFF_POLICY else PPO_SETTINGS)


def make_agent(
    name: str,
    env: gym.Env,
    seed: int | None = 0,
    *,
    warmup_episodes: int = 100,
    replay_episodes: int = 100,
    noise: Mapping[str, Any] | bool | None = True,
    episode_credit: bool = True,
    baseline_alpha: float | None = 0.5,
    rollout_episodes: int = 8,
    verbose: int = 0,
    vec_env: VecEnv | None = None,
    **sb3_kwargs: Any,
) -> BaseAlgorithm:
    """Build agent ``name`` (one of :data:`ALGOS`) for a pruning ``env``, with the
    settings of the module's table.

    Off-policy agents: ``warmup_episodes`` of uniform random actions (no update), a
    replay buffer of ``replay_episodes`` episodes, truncated-normal ``noise`` (True:
    :data:`AMC_NOISE`; a mapping: :class:`TruncatedNormalNoise` options over those
    defaults, e.g. ``{"decay": 0.9}``; False or None: no noise, SAC explores through its
    own stochastic policy and gets none by default), ``episode_credit`` and
    ``baseline_alpha`` (the AMC replay buffer; both False/None give SB3's plain
    buffer); updates at the end of every episode with one gradient step per transition.
    PPO collects ``rollout_episodes * n_units`` steps per update (at least that many
    episodes). ``sb3_kwargs`` override anything (``policy_kwargs`` is merged).

    ``vec_env``: the agent learns on these envs (of ``env``'s game) instead of ``env``;
    several of them play rounds of episodes (wrapped in
    :class:`~prunegym.agents.rounds.EpisodeRounds`; off-policy agents only, ``train_freq``
    in episodes).
    """
    if name not in ALGOS:
        raise ValueError(f"unknown agent {name!r}; known: {', '.join(sorted(ALGOS))}")
    check_action_space(env)
    n = game_of(env).n_units
    for key, value in (("warmup_episodes", warmup_episodes), ("replay_episodes", replay_episodes),
                       ("rollout_episodes", rollout_episodes)):  # fmt: skip
        if int(value) < (1 if key != "warmup_episodes" else 0):
            raise ValueError(f"{key} must be >= {0 if key == 'warmup_episodes' else 1}")
    rounds = isinstance(vec_env, EpisodeRounds)
    if rounds and name not in OFF_POLICY:
        raise ValueError(f"{name} learns on one env; several envs need an off-policy agent "
                         f"({', '.join(OFF_POLICY)})")  # fmt: skip
    if vec_env is not None and vec_env.num_envs > 1 and not rounds:
        raise ValueError("several envs play rounds of episodes: wrap them in EpisodeRounds")
    kwargs: dict[str, Any] = agent_defaults(name)
    if name in OFF_POLICY:
        kwargs.update(
            buffer_size=int(replay_episodes) * n,
            warmup_episodes=int(warmup_episodes),  # counted in episodes by the AMC classes
            learning_starts=0,
            train_freq=(1, "episode"),
            gradient_steps=-1,
        )
        if episode_credit or baseline_alpha is not None or rounds:
            kwargs["replay_buffer_class"] = EpisodeCreditReplayBuffer
            kwargs["replay_buffer_kwargs"] = {
                "episode_credit": bool(episode_credit),
                "baseline_alpha": baseline_alpha,
            }
        if (noise and name != "sac") or isinstance(noise, Mapping):
            options: dict[str, Any] = dict(AMC_NOISE)
            if isinstance(noise, Mapping):
                options.update(noise)
            options.setdefault("warmup_episodes", int(warmup_episodes))
            kwargs["action_noise"] = TruncatedNormalNoise(shape=(1,), seed=seed, **options)
    else:  # ppo
        n_steps = int(rollout_episodes) * n
        kwargs.update(n_steps=n_steps, batch_size=n_steps)
    policy_kwargs = dict(kwargs.pop("policy_kwargs", {}))
    policy_kwargs.update(sb3_kwargs.pop("policy_kwargs", None) or {})
    kwargs.update(sb3_kwargs)
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    kwargs.setdefault("device", "cpu")
    accepted = set(inspect.signature(ALGOS[name]).parameters)
    for cls in ALGOS[name].__mro__:
        if cls.__name__ in ("DDPG", "TD3", "SAC", "PPO"):
            accepted |= set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - accepted - {"policy"})
    if unknown:
        raise ValueError(
            f"agent {name!r} has no option {unknown[0]!r} (prunegym's: "
            "warmup_episodes, replay_episodes, noise, episode_credit, "
            "baseline_alpha, rollout_episodes; or any keyword of SB3's "
            f"{name.upper()})"
        )
    algo = ALGOS[name](kwargs.pop("policy", "MlpPolicy"), env if vec_env is None else vec_env,
                       seed=seed, verbose=verbose, **kwargs)  # fmt: skip
    if rounds:
        set_rounds(algo, True)
    return algo


def noise_sigma(agent: BaseAlgorithm) -> float:
    """The exploration sigma the agent uses now (nan when it has no such noise)."""
    noise = base_noise(getattr(agent, "action_noise", None))
    if noise is not None and hasattr(noise, "episodes"):
        noise.episodes = finished_episodes(agent)
    return float(getattr(noise, "sigma", np.nan))
