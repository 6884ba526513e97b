"""A generalist agent: one env cycling models and budgets episode by episode, trained for
an exact number of episodes, saved with every source, transferred to a third model."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from test_env import make_env

from prunegym.agents import MultiModelEnv, save_agent, train_generalist, transfer

FAST = {"mode": "masked", "bn_batches": 1, "bn_batch_size": 8, "batch_size": 64, "subset_size": 8}


def _env(arch, **kwargs):
    return make_env(arch, evaluator_options=FAST, **kwargs)


def test_the_games_take_turns_episode_by_episode():
    envs = [_env("smallcnn", ratio=0.5), _env("vgg11", ratio=0.4)]
    multi = MultiModelEnv(envs)
    assert multi.observation_space == envs[0].observation_space
    seen = []
    for _ in range(3):
        _, info = multi.reset(seed=0)
        assert info["source"] == multi.current and info["n_units"] == multi.n_units
        steps, done = 0, False
        while not done:
            _, _, done, _, info = multi.step(np.zeros(1, np.float32))
            steps += 1
        assert info["target"]["ratio"] == multi.target_ratio
        seen.append((multi.current, steps))
    assert seen == [(0, envs[0].n_units), (1, envs[1].n_units), (0, envs[0].n_units)]
    assert multi.episode_steps(0, 3) == 2 * envs[0].n_units + envs[1].n_units
    assert [d["target_ratio"] for d in multi.game_descriptions()] == [0.5, 0.4]


def test_games_the_agent_could_not_share_are_refused():
    with pytest.raises(ValueError, match="another granularity than env 0"):
        MultiModelEnv([_env("smallcnn"), _env("smallcnn", granularity="weight")])
    with pytest.raises(ValueError, match="another reward_name than env 0"):
        MultiModelEnv([_env("smallcnn"), _env("vgg11", reward="accuracy")])
    with pytest.raises(ValueError, match="at least one"):
        MultiModelEnv([])


def test_a_generalist_trains_exactly_and_transfers_to_a_third_model(tmp_path):
    envs = [_env("smallcnn", ratio=0.5), _env("vgg11", ratio=0.4)]
    run = train_generalist(envs, episodes=5, seed=0, warmup_episodes=3, replay_episodes=4)
    assert len(run.history) == 5 and run.sources == [0, 1, 0, 1, 0]
    for rec, i in zip(run.history, run.sources, strict=True):
        assert len(rec.sparsities) == envs[i].n_units
        assert rec.metrics["macs_ratio"] <= envs[i].target_ratio
    agent = run.agent
    assert agent.learning_starts == 0 and agent.warmup_episodes == 3  # counted in episodes
    assert agent.buffer_size == 4 * max(e.n_units for e in envs)
    path = save_agent(run, tmp_path / "agent.zip", source=[{"model": "smallcnn"},
                                                            {"model": "vgg11"}])  # fmt: skip
    meta = json.loads((tmp_path / "agent.json").read_text())
    assert [s["model"] for s in meta["sources"]] == ["smallcnn", "vgg11"]
    assert meta["target_ratios"] == [0.5, 0.4]
    target = _env("resnet20", ratio=0.45)
    result = transfer(path, target, episodes=0)
    budget = math.floor(Fraction(0.45) * target.table.total.macs)
    assert target.table.cost(result.zero_shot.policy).macs <= budget
    assert result.differences == ["target_ratio: [0.5, 0.4] (agent) -> 0.45 (target)"]
