"""AMC's credit assignment as a Stable-Baselines3 replay buffer.

The pruning game pays its reward only at the last unit. AMC stores every transition
of an episode with the episode's final reward, and trains on that reward minus a
moving-average baseline (an exponential average of the sampled batches' mean reward,
``moving_alpha = 0.5`` in the reference code), which centres the critic's targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples


class EpisodeCreditReplayBuffer(ReplayBuffer):
    """A ``ReplayBuffer`` that credits every transition with its episode's final reward.

    Transitions are held back until their episode ends, then all of them are stored
    with the final step's reward (``episode_credit=True``). When ``baseline_alpha`` is
    set, :meth:`sample` returns rewards minus a moving-average baseline that is updated
    with every sampled batch. Both additions can be switched off, which gives SB3's
    ordinary buffer back. Only one environment is supported (AMC plays one model).
    """

    def __init__(
        self,
        *args: Any,
        episode_credit: bool = True,
        baseline_alpha: float | None = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.n_envs != 1:
            raise ValueError("EpisodeCreditReplayBuffer supports one environment (n_envs=1)")
        if baseline_alpha is not None and not 0.0 < baseline_alpha <= 1.0:
            raise ValueError(f"baseline_alpha must be in (0, 1], got {baseline_alpha}")
        self.episode_credit = bool(episode_credit)
        self.baseline_alpha = baseline_alpha
        self.baseline: float | None = None
        self._pending: list[tuple[Any, ...]] = []

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        if not self.episode_credit:
            super().add(obs, next_obs, action, reward, done, infos)
            return
        item = (np.array(obs), np.array(next_obs), np.array(action), np.array(reward),
                np.array(done), [dict(i) for i in infos])  # fmt: skip
        self._pending.append(item)
        if not bool(np.asarray(done).reshape(-1)[0]):
            return
        final = np.array(reward, dtype=np.float32)
        pending, self._pending = self._pending, []
        for o, no, a, _, d, inf in pending:
            super().add(o, no, a, final, d, inf)

    @property
    def pending(self) -> int:
        """Transitions of the episode in progress (not yet sampleable)."""
        return len(self._pending)

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        samples = super().sample(batch_size, env=env)
        if self.baseline_alpha is None:
            return samples
        mean = float(samples.rewards.mean())
        if self.baseline is None:
            self.baseline = mean
        else:
            self.baseline = (1 - self.baseline_alpha) * self.baseline + self.baseline_alpha * mean
        return samples._replace(rewards=samples.rewards - self.baseline)
