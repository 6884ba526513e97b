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

#: The info key of a row that is not a transition (an env waiting for its round to end).
IDLE_KEY = "round_idle"


class EpisodeCreditReplayBuffer(ReplayBuffer):
    """A ``ReplayBuffer`` that credits every transition with its episode's final reward.

    Transitions are held back until their episode ends, then all of them are stored
    with the final step's reward (``episode_credit=True``). When ``baseline_alpha`` is
    set, :meth:`sample` returns rewards minus a moving-average baseline that is updated
    with every sampled batch. Both additions can be switched off, which gives SB3's
    ordinary buffer back.

    With several environments (``n_envs`` > 1: SB3 hands it one row per env at every
    step) each env's episode is held and credited on its own, and the transitions are
    stored one after another in one sequence (the storage is that of one env whatever
    ``n_envs`` is, so ``buffer_size`` counts transitions and a saved buffer loads
    with any number of envs). Rows marked idle (``info[IDLE_KEY]``: an env that waits
    for the end of a round, :mod:`prunegym.agents.rounds`) are not transitions and are
    dropped.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: Any,
        action_space: Any,
        device: Any = "auto",
        n_envs: int = 1,
        *,
        episode_credit: bool = True,
        baseline_alpha: float | None = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=1, **kwargs)
        if int(n_envs) < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if baseline_alpha is not None and not 0.0 < baseline_alpha <= 1.0:
            raise ValueError(f"baseline_alpha must be in (0, 1], got {baseline_alpha}")
        self.episode_credit = bool(episode_credit)
        self.baseline_alpha = baseline_alpha
        self.baseline: float | None = None
        self._held: dict[int, list[tuple[Any, ...]]] = {}

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        rows = len(infos)
        arrays = [np.asarray(a).reshape(rows, *np.shape(a)[1:])
                  for a in (obs, next_obs, action, reward, done)]  # fmt: skip
        for i in range(rows):
            if infos[i].get(IDLE_KEY):
                continue
            o, no, a, r, d = (np.array(x[i : i + 1]) for x in arrays)
            self._add_row(i, (o, no, a, r, d, [dict(infos[i])]))

    def _add_row(self, env: int, item: tuple[Any, ...]) -> None:
        if not self.episode_credit:
            super().add(*item)
            return
        held = self._holding().setdefault(env, [])
        held.append(item)
        if not bool(item[4].reshape(-1)[0]):
            return
        final = np.array(item[3], dtype=np.float32)
        del self._holding()[env]
        for o, no, a, _, d, inf in held:
            super().add(o, no, a, final, d, inf)

    def _holding(self) -> dict[int, list[tuple[Any, ...]]]:
        if not hasattr(self, "_held"):  # a buffer pickled before per-env holding
            self._held = {0: list(self.__dict__.pop("_pending", []))}
        return self._held

    @property
    def pending(self) -> int:
        """Transitions of the episodes in progress (not yet sampleable)."""
        return sum(len(v) for v in self._holding().values())

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
