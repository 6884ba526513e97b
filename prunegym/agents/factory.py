"""Stable-Baselines3 agents for the pruning game, with AMC's defaults for DDPG.

``make_agent("ddpg", env)`` gives DDPG as in the AMC reference (He et al. 2018):
actor and critic 300-300, learning rates 1e-4 (actor) / 1e-3 (critic), tau 0.01,
gamma 1, batch 64, a replay buffer of 100 episodes, ``warmup_episodes`` of uniform
random actions, truncated-normal exploration noise (sigma 0.5, x0.95 per episode after
the warm-up) and AMC's credit assignment (every transition gets the episode's final
reward minus a moving-average baseline). All of it goes through SB3's extension points:
``policy_kwargs``, ``action_noise``, ``replay_buffer_class``/``replay_buffer_kwargs``,
``learning_starts``, ``train_freq`` and two small overrides in a subclass (the noise is
not added during the warm-up and is truncated to the action bounds; the critic may have
its own learning rate; :mod:`prunegym.agents.sb3_internals`). Every AMC addition can be
switched off by an option.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from prunegym.agents.buffers import EpisodeCreditReplayBuffer
from prunegym.agents.episodes import check_action_space
from prunegym.agents.noise import TruncatedNormalNoise
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

#: AMC's DDPG settings (He et al. 2018, and the authors' reference code).
AMC_DDPG = {
    "learning_rate": 1e-4,
    "critic_learning_rate": 1e-3,
    "tau": 0.01,
    "gamma": 1.0,
    "batch_size": 64,
    "policy_kwargs": {"net_arch": {"pi": [300, 300], "qf": [300, 300]}},
}


def amc_defaults(name: str) -> dict[str, Any]:
    """The SB3 keyword defaults prunegym uses for ``name`` (before episode-size options)."""
    if name not in ALGOS:
        raise ValueError(f"unknown agent {name!r}; known: {', '.join(sorted(ALGOS))}")
    return copy.deepcopy(AMC_DDPG) if name == "ddpg" else {}


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
    **sb3_kwargs: Any,
) -> BaseAlgorithm:
    """Build agent ``name`` (one of :data:`ALGOS`) for a pruning ``env``.

    ``warmup_episodes`` of uniform random actions (``learning_starts``), a replay buffer
    of ``replay_episodes`` episodes, truncated-normal ``noise`` (True: AMC's sigma 0.5
    decaying 0.95 per episode; a mapping: :class:`TruncatedNormalNoise` options; False or
    None: no noise, SAC and PPO explore through their own stochastic policies),
    ``episode_credit`` and ``baseline_alpha`` (the AMC replay buffer; both False/None
    give SB3's plain buffer) apply to the off-policy agents; updates happen at the end
    of every episode with one gradient step per transition. PPO collects
    ``rollout_episodes`` whole episodes per update. ``sb3_kwargs`` override anything
    (``policy_kwargs`` is merged).
    """
    if name not in ALGOS:
        raise ValueError(f"unknown agent {name!r}; known: {', '.join(sorted(ALGOS))}")
    check_action_space(env)
    n = game_of(env).n_units
    for key, value in (("warmup_episodes", warmup_episodes), ("replay_episodes", replay_episodes),
                       ("rollout_episodes", rollout_episodes)):  # fmt: skip
        if int(value) < (1 if key != "warmup_episodes" else 0):
            raise ValueError(f"{key} must be >= {0 if key == 'warmup_episodes' else 1}")
    kwargs: dict[str, Any] = amc_defaults(name)
    if name in OFF_POLICY:
        kwargs.update(
            buffer_size=int(replay_episodes) * n,
            warmup_episodes=int(warmup_episodes),  # counted in episodes by the AMC classes
            learning_starts=0,
            train_freq=(1, "episode"),
            gradient_steps=-1,
        )
        if episode_credit or baseline_alpha is not None:
            kwargs["replay_buffer_class"] = EpisodeCreditReplayBuffer
            kwargs["replay_buffer_kwargs"] = {
                "episode_credit": bool(episode_credit),
                "baseline_alpha": baseline_alpha,
            }
        if (noise and name != "sac") or isinstance(noise, Mapping):
            options: dict[str, Any] = {"sigma": 0.5, "decay": 0.95}
            if isinstance(noise, Mapping):
                options.update(noise)
            options.setdefault("warmup_episodes", int(warmup_episodes))
            kwargs["action_noise"] = TruncatedNormalNoise(shape=(1,), seed=seed, **options)
    else:  # ppo
        n_steps = int(rollout_episodes) * n
        kwargs.update(n_steps=n_steps, batch_size=n_steps, gamma=1.0)
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
    algo = ALGOS[name](kwargs.pop("policy", "MlpPolicy"), env, seed=seed, verbose=verbose,
                       **kwargs)  # fmt: skip
    return algo


def noise_sigma(agent: BaseAlgorithm) -> float:
    """The exploration sigma the agent uses now (nan when it has no such noise)."""
    noise = getattr(agent, "action_noise", None)
    if noise is not None and hasattr(noise, "episodes"):
        noise.episodes = finished_episodes(agent)
    return float(getattr(noise, "sigma", np.nan))
