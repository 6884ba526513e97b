"""The one place prunegym reaches into Stable-Baselines3 beyond its public API, and why.

SB3 offers no public way to

- read how many episodes an off-policy algorithm has finished (``_episode_num``): it is
  saved with the agent, so AMC's noise decay counts it and a resumed agent explores
  exactly as before;
- restart collection on a fresh environment after a saved agent is loaded
  (``_last_obs``, ``_last_episode_starts``): ``learn(reset_num_timesteps=False)`` keeps
  the agent's last observation, which belongs to the environment of the saved run;
- change how an off-policy algorithm samples its exploration action and how it sets its
  optimizers' learning rates, except by overriding ``_sample_action`` and
  ``_update_learning_rate`` in a subclass (what SB3's own algorithms do); the warm-up
  that counts episodes also wraps ``train``, the public method each algorithm defines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import update_learning_rate

from prunegym.agents.noise import base_noise

# the mixin's host is an SB3 off-policy algorithm: type-check it as one
if TYPE_CHECKING:
    _Host = OffPolicyAlgorithm
else:
    _Host = object


def finished_episodes(agent: BaseAlgorithm) -> int:
    """Episodes the agent has finished (saved with it)."""
    return int(agent._episode_num)


def restart_rollout(agent: BaseAlgorithm) -> None:
    """Make the agent's next ``learn`` start a new episode on its current environment."""
    assert agent.env is not None
    agent._last_obs = agent.env.reset()  # type: ignore[assignment]  # VecEnv obs, as SB3's own
    agent._last_episode_starts = np.ones((agent.env.num_envs,), dtype=bool)


class AMCExplorationMixin(_Host):
    """AMC's exploration for an SB3 off-policy algorithm.

    - the warm-up counts episodes, not steps (an episode has at most one step per unit):
      the first ``warmup_episodes`` episodes play uniform random actions without noise
      (SB3's own warm-up sampling), and the first update comes after the episode that
      follows them (AMC's ``episode > warmup``); SB3's ``learning_starts`` is 0;
    - a noise with a ``perturb(action)`` method (:class:`TruncatedNormalNoise`) samples
      around the actor's action truncated to the bounds, instead of SB3's add-and-clip;
    - the noise's decay counts the algorithm's own finished episodes, which SB3 saves
      with the agent, so a resumed agent explores exactly as before;
    - ``critic_learning_rate`` (when set) is the critic's, ``learning_rate`` the actor's;
    - on several envs playing rounds of episodes (:mod:`prunegym.agents.rounds`), SB3
      does not update (``gradient_steps`` 0) and :meth:`end_round` updates instead, once
      ``episode_train_freq`` episodes finished since the last update.
    """

    def __init__(
        self,
        *args: Any,
        critic_learning_rate: float | None = None,
        warmup_episodes: int = 0,
        **kwargs: Any,
    ):
        self.critic_learning_rate = critic_learning_rate
        self.warmup_episodes = int(warmup_episodes)
        super().__init__(*args, **kwargs)  # the SB3 algorithm after the mixin in the MRO

    critic_learning_rate: float | None = None
    warmup_episodes: int = 0
    #: Set for rounds on several envs (:func:`prunegym.agents.rounds.set_rounds`): the
    #: episodes between updates, the gradient steps of one (-1: one per transition),
    #: and the episodes and transitions at the last update (saved with the agent).
    episode_train_freq: int | None = None
    episode_gradient_steps: int = -1
    round_updated_at: int = 0
    round_transitions: int = 0

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        warm = finished_episodes(self) < self.warmup_episodes
        starts = self.num_timesteps + 1 if warm else 0  # SB3 samples uniformly while warm
        noise = base_noise(action_noise)
        if noise is not None and hasattr(noise, "episodes"):
            noise.episodes = finished_episodes(self)
        perturb = getattr(noise, "perturb", None)
        if perturb is None and not warm:
            return super()._sample_action(starts, action_noise, n_envs)
        action, buffer_action = super()._sample_action(starts, None, n_envs)
        if warm or perturb is None:
            return action, buffer_action
        buffer_action = perturb(buffer_action, -1.0, 1.0)
        return self.policy.unscale_action(buffer_action), buffer_action

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if finished_episodes(self) <= self.warmup_episodes:
            return  # no update during the warm-up
        super().train(gradient_steps, batch_size)

    def end_round(self, transitions: int) -> None:
        """A round of episodes on the envs ended with ``transitions`` stored: update
        once ``episode_train_freq`` episodes finished since the last update, with one
        gradient step per transition stored since then (AMC's, as after an episode on
        one env) or ``episode_gradient_steps``."""
        self.round_transitions += int(transitions)
        if finished_episodes(self) - self.round_updated_at < (self.episode_train_freq or 1):
            return
        steps = self.episode_gradient_steps
        steps = self.round_transitions if steps < 0 else steps
        self.round_updated_at, self.round_transitions = finished_episodes(self), 0
        if steps > 0:
            self.train(gradient_steps=steps, batch_size=self.batch_size)

    def _update_learning_rate(self, optimizers: Any) -> None:
        super()._update_learning_rate(optimizers)
        if self.critic_learning_rate is not None and hasattr(self, "critic"):
            update_learning_rate(self.critic.optimizer, float(self.critic_learning_rate))


class AMCDDPG(AMCExplorationMixin, DDPG):
    """SB3's DDPG with AMC's exploration (see :class:`AMCExplorationMixin`)."""


class AMCTD3(AMCExplorationMixin, TD3):
    """SB3's TD3 with AMC's exploration."""


class AMCSAC(AMCExplorationMixin, SAC):
    """SB3's SAC with AMC's warm-up and optional extra noise."""
