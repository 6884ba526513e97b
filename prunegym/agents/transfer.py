"""Transferring a trained agent to a model it has never seen: zero-shot, then fine-tuned.

``transfer(source, env, episodes=K)`` loads the agent saved by a search (a run
directory, or an ``agent.zip`` with its ``agent.json``), checks that it can act on
``env`` (:mod:`prunegym.agents.metadata`), and plays:

- episode 0, *zero-shot*: the agent's deterministic actions, no exploration: an
  in-budget policy (the action wall guarantees it) after a single evaluation;
- episodes 1..K, *fine-tuning* on the target: no warm-up by default (``warmup_episodes``
  sets a short one), a small truncated-normal exploration noise, a fresh replay buffer
  sized for the target's units (the zero-shot episode is its first), and the source's
  moving-average reward baseline.

:class:`TransferSearcher` is an :class:`~prunegym.agents.rl.RLSearcher`: it checkpoints
and resumes like any search (searcher name ``transfer``). Agent files are cloudpickle
(SB3's format): they run code when loaded and must come from a trusted source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from prunegym.agents.buffers import EpisodeCreditReplayBuffer
from prunegym.agents.callbacks import SearchCallback
from prunegym.agents.checkpoint import CheckpointState
from prunegym.agents.episodes import play_episode
from prunegym.agents.factory import OFF_POLICY
from prunegym.agents.metadata import REQUIRED, check_agent, load_agent, read_metadata
from prunegym.agents.noise import TruncatedNormalNoise
from prunegym.agents.results import EpisodeRecord, SearchResult
from prunegym.agents.rl import RLSearcher
from prunegym.agents.sb3_internals import AMCExplorationMixin, finished_episodes
from prunegym.envs.contract import describe_game


@dataclass
class TransferResult(SearchResult):
    """A :class:`SearchResult` whose episode 0 is the zero-shot policy, plus what the
    agent was trained on and how the target differs."""

    source: dict[str, Any] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)

    @property
    def zero_shot(self) -> EpisodeRecord | None:
        return self.history[0] if self.history else None


class TransferSearcher(RLSearcher):
    """A saved agent acting on this game: episode 0 zero-shot, then fine-tuned.

    ``source``: a run directory or an agent zip (with ``agent.json`` beside it). With
    ``env`` given, the agent is checked at construction, before anything is evaluated.
    Fine-tuning explores with :class:`TruncatedNormalNoise` of ``noise_sigma`` decaying
    by ``noise_decay`` per fine-tune episode after the warm-up (DDPG and TD3; SAC
    explores by itself), and learns out of a fresh replay buffer of ``replay_episodes``
    episodes of this game, starting from the source's reward baseline when the reward
    is the same. The off-policy agents' warm-up: the first ``warmup_episodes`` fine-tune
    episodes play uniform random actions without an update (0, the default: the agent
    learns from the first one), however far the source itself got with its own warm-up.
    PPO has no warm-up: it collects ``rollout_episodes`` episodes of this game per update.
    """

    name = "transfer"

    def __init__(
        self,
        env: gym.Env | None = None,
        seed: int = 0,
        source: str | os.PathLike[str] | None = None,
        noise_sigma: float = 0.1,
        noise_decay: float = 0.95,
        replay_episodes: int = 100,
        rollout_episodes: int = 8,
        warmup_episodes: int = 0,
    ) -> None:
        if source is None:
            raise ValueError("the transfer searcher needs source= (a run directory or an agent)")
        if not noise_sigma >= 0 or not 0 < noise_decay <= 1:
            raise ValueError("transfer needs noise_sigma >= 0 and 0 < noise_decay <= 1")
        if int(replay_episodes) < 1 or int(rollout_episodes) < 1:
            raise ValueError("transfer needs replay_episodes >= 1 and rollout_episodes >= 1")
        if int(warmup_episodes) < 0:
            raise ValueError(f"transfer needs warmup_episodes >= 0, got {warmup_episodes}")
        super().__init__(env, seed, algo="ddpg")  # the algorithm is the source's (below)
        self.name = "transfer"
        self.source = os.fspath(source)
        self.noise_sigma, self.noise_decay = float(noise_sigma), float(noise_decay)
        self.replay_episodes, self.rollout_episodes = int(replay_episodes), int(rollout_episodes)
        self.warmup_episodes = int(warmup_episodes)
        self.metadata: dict[str, Any] | None = None
        self.differences: list[str] = []
        self.baseline_carried = False
        if env is not None:
            self.check(env)

    def check(self, env: gym.Env) -> list[str]:
        """Read the source's metadata and check it against ``env`` (nothing is loaded):
        the differences, or an :class:`~prunegym.agents.metadata.IncompatibleAgentError`."""
        path, meta = read_metadata(self.source)
        self.differences = check_agent(meta, env, where=f"agent {path}")
        self.metadata, self.algo = meta, meta["algo"]
        return list(self.differences)

    # the agent, ready to fine-tune ----------------------------------------------------
    def make(self, env: gym.Env) -> BaseAlgorithm:
        if self.agent is None:
            self.check(env)
            self.agent = self._load(env)
        return self.agent

    def _load(self, env: gym.Env) -> BaseAlgorithm:
        n = self.game.n_units
        overrides: dict[str, Any] = {"seed": self.seed, "tensorboard_log": None}
        if self.algo in OFF_POLICY:
            overrides.update(buffer_size=self.replay_episodes * n, learning_starts=0)
        else:
            steps = self.rollout_episodes * n
            overrides.update(n_steps=steps, batch_size=steps)
        loaded = load_agent(self.source, env, **overrides)
        agent, meta = loaded.agent, loaded.metadata
        # the agent keeps counting the source's episodes: the warm-up and the noise's
        # decay start from there (the zero-shot episode is played outside SB3's count)
        warm_until = finished_episodes(agent) + self.warmup_episodes
        if isinstance(agent, AMCExplorationMixin):
            agent.warmup_episodes = warm_until
        if self.algo in ("ddpg", "td3") and isinstance(agent, OffPolicyAlgorithm):
            agent.action_noise = TruncatedNormalNoise(
                (1,), sigma=self.noise_sigma, decay=self.noise_decay,
                warmup_episodes=warm_until, seed=self.seed,
            )  # fmt: skip
        buffer = getattr(agent, "replay_buffer", None)
        same_reward = meta["reward_name"] == describe_game(env)["reward_name"]
        if isinstance(buffer, EpisodeCreditReplayBuffer) and same_reward:
            baseline = meta.get("reward_baseline")
            buffer.baseline = None if baseline is None else float(baseline)
            self.baseline_carried = baseline is not None
        return agent

    # the episodes ---------------------------------------------------------------------
    def _run(self, env: gym.Env, episodes: int) -> None:
        agent = self.make(env)
        if not self.history:
            self._zero_shot(env, agent)
        if len(self.history) < episodes and not self.stop_requested:
            super()._run(env, episodes)

    def _zero_shot(self, env: gym.Env, agent: BaseAlgorithm) -> None:
        """Episode 0: the agent's deterministic actions; its transitions start the buffer."""
        observations: list[np.ndarray] = []
        actions: list[np.ndarray] = []

        def act(obs: np.ndarray, _t: int) -> float:
            action, _ = agent.predict(obs, deterministic=True)
            observations.append(np.array(obs))
            actions.append(np.asarray(action, dtype=np.float32).reshape(1, -1))
            return float(np.asarray(action).reshape(-1)[0])

        record = play_episode(env, act, 0, seed=self._reset_seed())
        buffer = getattr(agent, "replay_buffer", None)
        if isinstance(agent, OffPolicyAlgorithm) and buffer is not None:
            last = len(observations) - 1
            for t, (obs, action) in enumerate(zip(observations, actions, strict=True)):
                nxt = observations[min(t + 1, last)]  # the terminal one is masked by done
                reward = np.array([record.reward if t == last else 0.0], dtype=np.float32)
                buffer.add(obs[None], nxt[None], action, reward, np.array([t == last]), [{}])
        self._record(record)
        self._safe_point()

    def result(self) -> TransferResult:
        base = super().result()
        return TransferResult(base.best, base.history, base.unit_names, base.selection,
                              base.actor, source=dict(self.metadata or {}),
                              differences=list(self.differences))  # fmt: skip

    def report(self) -> dict[str, Any]:
        """What ``transfer.json`` holds: source, checks, differences, zero-shot metrics."""
        zero = self.history[0] if self.history else None
        return {
            "source": self.source,
            "algo": self.algo,
            "agent": dict(self.metadata or {}),
            "checks": {key: "same as the source" for key in REQUIRED},
            "differences": list(self.differences),
            "reward_baseline_carried": self.baseline_carried,
            "fine_tune": {
                "episodes": max(0, len(self.history) - 1),
                "noise_sigma": self.noise_sigma,
                "noise_decay": self.noise_decay,
                "replay_episodes": self.replay_episodes,
                "warmup_episodes": self.warmup_episodes if self.algo in OFF_POLICY else 0,
            },
            "zero_shot": None if zero is None else {"reward": zero.reward, **zero.metrics},
        }

    # checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> CheckpointState:
        state = super().state_dict()
        state.meta["transfer"] = {"algo": self.algo, "metadata": self.metadata,
                                  "differences": self.differences,
                                  "baseline_carried": self.baseline_carried}  # fmt: skip
        return state

    def load_state_dict(self, state: CheckpointState) -> None:
        saved = state.meta["transfer"]
        self.algo = str(saved["algo"])  # the saved agent is loaded as this algorithm
        super().load_state_dict(state)
        self.metadata, self.differences = saved["metadata"], list(saved["differences"])
        self.baseline_carried = bool(saved["baseline_carried"])


def transfer(
    source: str | os.PathLike[str],
    env: gym.Env,
    episodes: int = 0,
    seed: int = 0,
    noise_sigma: float = 0.1,
    noise_decay: float = 0.95,
    replay_episodes: int = 100,
    callbacks: list[SearchCallback] | tuple[SearchCallback, ...] = (),
    progress: bool = False,
    warmup_episodes: int = 0,
) -> TransferResult:
    """The agent of ``source`` on ``env``: the zero-shot episode, then ``episodes`` of
    fine-tuning (0: zero-shot only). See :class:`TransferSearcher`."""
    if int(episodes) < 0:
        raise ValueError(f"episodes must be >= 0, got {episodes}")
    searcher = TransferSearcher(env, seed=seed, source=source, noise_sigma=noise_sigma,
                                noise_decay=noise_decay,
                                replay_episodes=replay_episodes,
                                warmup_episodes=warmup_episodes)  # fmt: skip
    result = searcher.search(env, int(episodes) + 1, callbacks=callbacks, progress=progress)
    assert isinstance(result, TransferResult)
    return result
