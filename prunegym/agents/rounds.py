"""An off-policy agent on N envs at once: the episodes are played in rounds.

SB3 steps every env of a ``VecEnv`` at every step, and the pruning game's episodes do
not all have the same length (the action wall skips the units it leaves one level),
so N envs left to themselves drift apart and never all stand between two episodes:
there would be no moment to update as AMC does (after an episode) and none to save a
checkpoint. :class:`EpisodeRounds` keeps them together: every env of a round plays one
episode, an env whose episode is over waits (its rows are marked idle, and the
:class:`~prunegym.agents.buffers.EpisodeCreditReplayBuffer` drops them), and the next
round starts when all have finished. Between two rounds nothing is in progress: the
agent updates there (:class:`RoundUpdates` calls the AMC algorithm's ``end_round``)
and the searcher may save.

What N changes (documented in ``docs/rewards-and-searchers.md``): the N episodes of a
round start with the same policy, so the agent updates at most once per round; an
update still makes one gradient step per transition, the warm-up and the noise decay
still count finished episodes (of all envs), ``train_freq`` still counts episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvObs,
    VecEnvStepReturn,
    VecEnvWrapper,
)

from prunegym.agents.buffers import IDLE_KEY, EpisodeCreditReplayBuffer
from prunegym.agents.noise import base_noise
from prunegym.agents.sb3_internals import AMCExplorationMixin, finished_episodes


class EpisodeRounds(VecEnvWrapper):
    """Plays ``venv``'s envs in rounds of one episode each (see the module docs).

    ``venv`` must step a subset of its envs (``step_envs(indices, actions)``, as
    :class:`~prunegym.agents.ray_vec_env.RayVecEnv` does). ``round_size`` envs (the
    first ones) play the next round; fewer than all of them play the last round of a
    search that needs fewer episodes. The row of an env that does not play is its
    current observation, reward 0, not done, ``info[IDLE_KEY]`` True.
    """

    def __init__(self, venv: VecEnv) -> None:
        step_envs = getattr(venv, "step_envs", None)
        if not callable(step_envs):
            raise TypeError(f"{type(venv).__name__} cannot step a subset of its envs")
        if not isinstance(venv.observation_space, spaces.Box):
            raise TypeError("EpisodeRounds needs a Box observation space")
        super().__init__(venv)
        self.round_size = venv.num_envs
        self._step_envs: Callable[[list[int], np.ndarray], tuple[list, list, list, list]] = (
            step_envs
        )
        self._playing: list[int] = []
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    @property
    def round_over(self) -> bool:
        """No env is in the middle of an episode."""
        return not self._playing

    def reset(self) -> VecEnvObs:
        obs = self.venv.reset()
        self._obs = np.array(obs, copy=True)
        self._playing = []
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        if not 1 <= self.round_size <= self.num_envs:
            raise ValueError(f"round_size must be in [1, {self.num_envs}], got {self.round_size}")
        if not self._playing:
            self._playing = list(range(self.round_size))
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._obs is not None and self._actions is not None, "reset() first"
        idx = list(self._playing)
        obs, rewards, dones, infos = self._step_envs(idx, self._actions[idx])
        out_rewards = np.zeros(self.num_envs, dtype=np.float32)
        out_dones = np.zeros(self.num_envs, dtype=bool)
        out_infos: list[dict[str, Any]] = [{IDLE_KEY: True} for _ in range(self.num_envs)]
        for k, i in enumerate(idx):
            self._obs[i] = obs[k]
            out_rewards[i], out_dones[i], out_infos[i] = rewards[k], dones[k], infos[k]
            if dones[k]:
                self._playing.remove(i)
        return self._obs.copy(), out_rewards, out_dones, out_infos


class RoundUpdates(BaseCallback):
    """Counts the transitions of a round and, when the round is over, lets the agent
    update (:meth:`~prunegym.agents.sb3_internals.AMCExplorationMixin.end_round`)."""

    def __init__(self, rounds: EpisodeRounds) -> None:
        super().__init__()
        self.rounds = rounds
        self._transitions = 0

    def _on_step(self) -> bool:
        self._transitions += sum(not info.get(IDLE_KEY) for info in self.locals["infos"])
        return True

    def _on_rollout_end(self) -> None:
        if self.rounds.round_over:
            transitions, self._transitions = self._transitions, 0
            assert isinstance(self.model, AMCExplorationMixin)
            self.model.end_round(transitions)


def set_rounds(agent: BaseAlgorithm, rounds: bool) -> None:
    """Switch an AMC off-policy agent between SB3's own updates (one env:
    ``train_freq`` in episodes) and updates at the end of rounds (several envs), keeping
    its ``train_freq`` (episodes) and ``gradient_steps``; a no-op when it is already so.
    A saved agent may so continue on another number of envs."""
    if not isinstance(agent, AMCExplorationMixin):
        raise ValueError(f"{type(agent).__name__} cannot play rounds on several envs")
    if rounds == (agent.episode_train_freq is not None):
        return
    if rounds:
        freq = agent.train_freq
        if not isinstance(freq, TrainFreq) or freq.unit != TrainFrequencyUnit.EPISODE:
            raise ValueError("with several workers train_freq counts episodes: give it as "
                             "[n, episode]")  # fmt: skip
        if not isinstance(agent.replay_buffer, EpisodeCreditReplayBuffer):
            raise ValueError("several workers need the episode-credit replay buffer")
        agent.episode_train_freq = int(freq.frequency)
        agent.episode_gradient_steps = int(agent.gradient_steps)
        agent.train_freq = TrainFreq(1, TrainFrequencyUnit.STEP)  # type: ignore[assignment]  # as SB3's own
        agent.gradient_steps = 0  # SB3 does not update; RoundUpdates does
        agent.round_updated_at, agent.round_transitions = finished_episodes(agent), 0
    else:
        episodes = int(agent.episode_train_freq or 1)
        agent.train_freq = TrainFreq(episodes, TrainFrequencyUnit.EPISODE)  # type: ignore[assignment]
        agent.gradient_steps = agent.episode_gradient_steps
        agent.episode_train_freq = None
        agent.action_noise = base_noise(agent.action_noise)
