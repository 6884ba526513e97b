"""The bridge between Stable-Baselines3 agents and the searcher interface.

:class:`RLSearcher` trains an agent of :data:`~prunegym.agents.factory.ALGOS` on the
pruning game; SB3's per-step callback hooks become the searcher's episodes and safe
points. Its checkpoint holds the agent and its replay buffer in SB3's own formats
(cloudpickle, by SB3's design): they run code when loaded, so a checkpoint (and an
``agent.zip``) must come from a trusted source.
"""

from __future__ import annotations

import io
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from prunegym.agents.buffers import IDLE_KEY
from prunegym.agents.checkpoint import CheckpointError, CheckpointState, generator_state
from prunegym.agents.episodes import play_episode, record_from_infos
from prunegym.agents.factory import ALGOS, OFF_POLICY, make_agent, noise_sigma
from prunegym.agents.results import EpisodeRecord
from prunegym.agents.rounds import EpisodeRounds, RoundUpdates, set_rounds
from prunegym.agents.sb3_internals import finished_episodes, restart_rollout
from prunegym.agents.searcher import Searcher, check_searcher


class _SB3Bridge(BaseCallback):
    """Turns SB3's per-step callback hooks into the searcher's episodes and safe points.

    Each env's steps make its episode; episodes are recorded (numbered) in the order
    they finish, envs in index order within a step. With ``rounds`` (several envs) a
    safe point is the end of a round, and the next round plays only as many envs as
    episodes are still wanted."""

    def __init__(
        self, searcher: RLSearcher, episodes: int, rounds: EpisodeRounds | None = None
    ) -> None:
        super().__init__()
        self.searcher = searcher
        self.episodes = episodes
        self.rounds = rounds
        self._steps: dict[int, list[dict[str, Any]]] = {}
        self._t0: dict[int, float] = {}  # when each env's episode started
        self._start = time.perf_counter()  # ... unless it is not in _t0
        self._stop = False

    def _on_training_start(self) -> None:
        self._start, self._t0 = time.perf_counter(), {}

    def _on_rollout_start(self) -> None:
        # after the previous update and before the next episode's first step: the
        # agent, its buffer and the history agree, so the state may be saved here
        if any(self._steps.values()):
            return
        s = self.searcher
        s._safe_point()
        if s.stop_requested or len(s.history) >= self.episodes:
            self._stop = True  # the next step (not recorded, not stored) ends learn
        elif self.rounds is not None:
            self.rounds.round_size = min(self.rounds.num_envs, self.episodes - len(s.history))
            self._start, self._t0 = time.perf_counter(), {}  # the round starts now

    def _on_step(self) -> bool:
        if self._stop:
            return False
        now = time.perf_counter()
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"],
                                             strict=True)):  # fmt: skip
            if info.get(IDLE_KEY):
                continue
            self._steps.setdefault(i, []).append(dict(info))
            if bool(done):
                s = self.searcher
                seconds = now - self._t0.get(i, self._start)
                rec = record_from_infos(len(s.history), self._steps.pop(i), seconds)
                self._t0[i] = now
                s._record(rec)
        if len(self.searcher.history) >= self.episodes:
            return not isinstance(self.model, OnPolicyAlgorithm)
        return True


class RLSearcher(Searcher):
    """A Stable-Baselines3 agent (:data:`ALGOS`) learning the pruning game.

    ``agent_options`` go to :func:`make_agent`; pass ``agent`` to use one already built.
    ``search`` trains for ``episodes`` episodes; every episode played is one candidate
    in the history, exploration included.
    """

    def __init__(
        self,
        env: gym.Env | None = None,
        seed: int = 0,
        algo: str = "ddpg",
        agent: BaseAlgorithm | None = None,
        **agent_options: Any,
    ) -> None:
        super().__init__(env, seed)
        if algo not in ALGOS:
            raise ValueError(f"unknown agent {algo!r}; known: {', '.join(sorted(ALGOS))}")
        self.algo = algo
        self.name = algo
        self.agent = agent
        self.agent_options = dict(agent_options)
        self.rounds: EpisodeRounds | None = None
        self._resumed = False

    def use_envs(self, venv: VecEnv | None) -> None:
        """Learn on ``venv``'s envs (e.g. a :class:`~prunegym.agents.ray_vec_env.RayVecEnv`
        of N workers), in rounds of one episode per env (:mod:`prunegym.agents.rounds`);
        None: on the searcher's env. Call it before :meth:`search` and before loading a
        checkpoint (an agent saved on another number of envs continues on these)."""
        if venv is not None and self.algo not in OFF_POLICY:
            raise ValueError(f"{self.algo} learns on one env; several envs need an "
                             f"off-policy agent ({', '.join(OFF_POLICY)})")  # fmt: skip
        if self.agent is not None:
            raise ValueError("use_envs() must come before the agent is built or loaded")
        self.rounds = None if venv is None else EpisodeRounds(venv)

    def make(self, env: gym.Env) -> BaseAlgorithm:
        if self.agent is None:
            self.agent = make_agent(self.algo, env, seed=self.seed, vec_env=self.rounds,
                                    **self.agent_options)  # fmt: skip
        return self.agent

    def exploration_sigma(self) -> float:
        return math.nan if self.agent is None else noise_sigma(self.agent)

    def _run(self, env: gym.Env, episodes: int) -> None:
        agent = self.make(env)
        remaining = episodes - len(self.history)
        warmup = int(getattr(agent, "warmup_episodes", 0))
        if finished_episodes(agent) == 0 and warmup >= episodes:
            warnings.warn(f"{self.algo}: warmup_episodes ({warmup}) >= episodes ({episodes}): "
                          "every episode is a uniform random warm-up and the agent never "
                          "trains; lower search.options.warmup_episodes", stacklevel=2)  # fmt: skip
        if self._resumed:
            # the loaded agent's last observation is the old env's: start afresh, then
            # continue the env's RNG as saved (the pruning env's reset is deterministic)
            restart_rollout(agent)
            self._restore_env_rng()
        # an episode has at most n_units steps (a round of n envs at most n * n_units
        # timesteps): the bridge stops learn at ``episodes``
        n = 1 if self.rounds is None else self.rounds.num_envs
        callbacks: list[BaseCallback] = [_SB3Bridge(self, episodes, self.rounds)]
        if self.rounds is not None:
            callbacks.append(RoundUpdates(self.rounds))
        agent.learn(math.ceil(remaining / n) * n * self._max_episode_steps(), callback=callbacks,
                    reset_num_timesteps=not self.history)  # fmt: skip
        self._resumed = False

    def _max_episode_steps(self) -> int:
        """The most steps one episode can take (the bridge stops ``learn`` at the
        episode count; this only bounds SB3's timestep budget)."""
        return self.game.n_units

    def deterministic_act(self) -> Callable[[np.ndarray, int], float] | None:
        """The agent's deterministic policy as ``act(observation, unit)`` (None before
        an agent exists)."""
        agent = self.agent
        if agent is None:
            return None

        def act(obs: np.ndarray, _unit: int) -> float:
            action, _ = agent.predict(obs, deterministic=True)
            return float(np.asarray(action).reshape(-1)[0])

        return act

    def _actor_candidate(self, env: gym.Env) -> EpisodeRecord | None:
        """One episode of the agent's deterministic policy (no exploration), a
        candidate of the held-out selection; the next ``learn`` starts a fresh episode."""
        act = self.deterministic_act()
        if act is None:
            return None
        record = play_episode(env, act, len(self.history))
        self._resumed = True  # SB3's last observation belongs to the interrupted rollout
        return record

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the agent as an SB3 zip (``agent.zip``)."""
        if self.agent is None:
            raise ValueError("no agent to save: search first")
        self.agent.save(Path(path))

    def state_dict(self) -> CheckpointState:
        state = super().state_dict()
        if self.agent is not None:
            buf = io.BytesIO()
            self.agent.save(buf)
            state.blobs["agent.zip"] = buf.getvalue()
            state.meta["action_space_rng"] = generator_state(self.agent.action_space.np_random)
            if isinstance(self.agent, OffPolicyAlgorithm) and self.agent.replay_buffer:
                rb = io.BytesIO()
                self.agent.save_replay_buffer(rb)
                state.blobs["replay_buffer.pkl"] = rb.getvalue()
        return state

    def load_state_dict(self, state: CheckpointState) -> None:
        check_searcher(state.meta, self.name)
        if "agent.zip" in state.blobs:
            if self.env is None:
                raise CheckpointError("resuming an RL search needs the environment")
            env = self.rounds if self.rounds is not None else self.env
            agent = ALGOS[self.algo].load(io.BytesIO(state.blobs["agent.zip"]), env=env,
                                          device="cpu")  # fmt: skip
            if "replay_buffer.pkl" in state.blobs and isinstance(agent, OffPolicyAlgorithm):
                agent.load_replay_buffer(io.BytesIO(state.blobs["replay_buffer.pkl"]))
            if isinstance(agent, OffPolicyAlgorithm):
                try:  # saved on another number of envs: continue on these
                    set_rounds(agent, self.rounds is not None)
                except ValueError as exc:
                    raise CheckpointError(
                        f"cannot resume this agent on {agent.n_envs} env(s): {exc}"
                    ) from None
            agent.action_space.np_random.bit_generator.state = state.meta["action_space_rng"]
            self.agent = agent
            self._resumed = True
        super().load_state_dict(state)  # global RNG states last: loading reseeds them
