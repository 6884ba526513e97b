"""Agent transfer (Python API): an agent trained briefly on one model acts on a model of
another family; the fine-tune's settings; the checks that refuse an agent."""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from fractions import Fraction

import pytest
from test_env import make_env

from prunegym.agents import (
    CheckpointCallback,
    IncompatibleAgentError,
    RLSearcher,
    SearchCallback,
    TransferSearcher,
    save_agent,
    transfer,
)

WEIGHT = {"granularity": "weight", "max_sparsity": 0.95}
FAST = {"mode": "masked", "bn_batches": 1, "bn_batch_size": 8, "batch_size": 64, "subset_size": 8}


def weight_env(arch: str, **kwargs):
    return make_env(arch, **{**WEIGHT, "evaluator_options": FAST, **kwargs})


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A DDPG agent trained for 4 episodes on smallcnn (5 weight units: conv, linear)."""
    env = weight_env("smallcnn", ratio=0.5)
    searcher = RLSearcher(env, seed=0, algo="ddpg", warmup_episodes=2)
    searcher.search(env, 4, progress=False)
    path = tmp_path_factory.mktemp("source") / "agent.zip"
    save_agent(searcher, path, source={"model": "smallcnn", "dataset": "random"})
    return path, searcher.agent.replay_buffer.baseline, env


def test_saved_metadata_records_what_the_agent_was_trained_on(source):
    path, baseline, env = source
    meta = json.loads(path.with_suffix(".json").read_text())
    game = env.game_description()
    keys = ("feature_version", "observation_features", "action_mapping", "granularity",
            "reward_name", "min_sparsity", "max_sparsity", "round_to", "target_kind")  # fmt: skip
    for key in keys:
        assert meta[key] == game[key], key
    assert meta["algo"] == "ddpg" and meta["target_ratios"] == [0.5]
    assert meta["reward_baseline"] == baseline and baseline is not None
    (src,) = meta["sources"]
    assert (src["model"], src["dataset"], src["n_units"]) == ("smallcnn", "random", env.n_units)


def test_zero_shot_on_another_family_is_in_budget_and_deterministic(source):
    path, _, source_env = source
    runs = []
    for _ in range(2):  # two fresh targets: mobilenetv2 has depthwise units, smallcnn none
        env = weight_env("mobilenetv2", ratio=0.3)
        runs.append((env, transfer(path, env, episodes=0, seed=3)))
    env, result = runs[0]
    kinds = {u.kind for u in env.table}
    assert env.n_units != source_env.n_units and kinds - {u.kind for u in source_env.table}
    assert result.episodes == 1 and result.zero_shot is result.history[0] is result.search_best
    zero = result.zero_shot
    assert result.best.kept == zero.kept  # the held-out pick: the zero-shot policy
    budget = math.floor(Fraction(0.3) * env.table.total.macs)  # exact, no tolerance
    assert env.table.cost(zero.policy).macs <= budget
    assert zero.comparable() == runs[1][1].zero_shot.comparable()
    assert result.differences == ["target_ratio: 0.5 (agent) -> 0.3 (target)"]


def test_fine_tune_has_no_warmup_a_target_sized_buffer_and_the_source_baseline(source):
    path, baseline, _ = source
    env = weight_env("vgg11", ratio=0.5)
    searcher = TransferSearcher(env, seed=0, source=path, noise_sigma=0.2, replay_episodes=7)
    searcher.search(env, 1, progress=False)  # the zero-shot episode only
    agent = searcher.agent
    assert agent.learning_starts == 0 and agent.buffer_size == 7 * env.n_units
    buffer = agent.replay_buffer
    assert buffer.size() == env.n_units  # the zero-shot episode, nothing of the source
    assert buffer.baseline == baseline and searcher.baseline_carried
    assert agent.action_noise.sigma == pytest.approx(0.2)
    before = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    result = searcher.search(env, 2, progress=False)  # one fine-tune episode
    assert result.episodes == 2 and result.history[0].episode == 0
    changed = [k for k, v in agent.actor.state_dict().items() if not v.equal(before[k])]
    assert changed  # trained after its first fine-tune episode: no warm-up
    assert agent.action_noise.sigma == pytest.approx(0.2 * 0.95)
    assert buffer.baseline != baseline  # the carried baseline moved on with the target's


def _actor(searcher):
    return {k: v.clone() for k, v in searcher.agent.actor.state_dict().items()}


def _same_params(a, b):
    return a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_the_warm_up_counts_from_the_transfer_not_from_the_sources_own(tmp_path):
    """A source stopped inside its own warm-up (2 of 5 episodes) does not make the
    transferred agent wait for the rest of it; ``warmup_episodes`` gives a short one."""
    env = weight_env("smallcnn", ratio=0.5)
    early = RLSearcher(env, seed=0, algo="ddpg", warmup_episodes=5)
    early.search(env, 2, progress=False)
    path = save_agent(early, tmp_path / "agent.zip")
    target = weight_env("vgg11", ratio=0.5)

    none = TransferSearcher(target, seed=0, source=path)
    none.search(target, 1, progress=False)
    assert none.agent.warmup_episodes == 2  # the source's finished episodes, no more
    loaded = _actor(none)
    none.search(target, 2, progress=False)
    assert not _same_params(_actor(none), loaded)  # learnt after its first fine-tune episode

    short = TransferSearcher(target, seed=0, source=path, warmup_episodes=2)
    short.search(target, 3, progress=False)  # zero-shot, then the 2 warm-up episodes
    agent = short.agent
    assert agent.warmup_episodes == agent.action_noise.warmup_episodes == 2 + 2
    assert _same_params(_actor(short), loaded)  # no update during the warm-up
    assert agent.action_noise.sigma == pytest.approx(0.1)  # no decay during it either
    assert agent.buffer_size == 100 * target.n_units
    assert agent.replay_buffer.size() == 3 * target.n_units  # zero-shot + warm-up episodes
    short.search(target, 4, progress=False)
    assert not _same_params(_actor(short), loaded)
    assert short.report()["fine_tune"]["warmup_episodes"] == 2


def test_another_reward_and_budget_are_reported_and_the_baseline_is_not_carried(source):
    path, _, _ = source
    env = weight_env("smallcnn", ratio=0.4, reward="accuracy", max_sparsity=0.9)
    searcher = TransferSearcher(env, seed=0, source=path)
    assert searcher.differences == [
        "reward_name: 'retention' (agent) -> 'accuracy' (target)",
        "max_sparsity: 0.95 (agent) -> 0.9 (target)",
        "target_ratio: 0.5 (agent) -> 0.4 (target)",
    ]
    searcher.search(env, 1, progress=False)
    assert searcher.agent.replay_buffer.baseline is None and not searcher.baseline_carried


class _StopAfter(SearchCallback):
    def __init__(self, n):
        self.n = n

    def on_episode(self, searcher, record):
        if len(searcher.history) >= self.n:
            searcher.request_stop()


def test_a_transfer_resumes_to_the_same_history(source, tmp_path):
    path, _, _ = source
    target = {"arch": "smallcnn", "ratio": 0.4}
    full = TransferSearcher(weight_env(**target), seed=1, source=path)
    full = full.search(episodes=4, progress=False)
    ckpt = tmp_path / "checkpoint.zip"
    first = TransferSearcher(weight_env(**target), seed=1, source=path)
    first.search(episodes=4, callbacks=[_StopAfter(2), CheckpointCallback(ckpt, 1)],
                 progress=False)  # fmt: skip
    env = weight_env(**target)
    again = TransferSearcher(env, seed=1, source=path)
    again.load_checkpoint(ckpt, env=env)
    assert len(again.history) == 2 and again.agent.learning_starts == 0
    resumed = again.search(env, 4, progress=False)
    assert [r.comparable() for r in resumed.history] == [r.comparable() for r in full.history]


# ----------------------------------------------------------------------- incompatible agents
def _edited(path, tmp_path, **changes):
    target = tmp_path / "agent.zip"
    shutil.copy(path, target)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta.update(changes)
    target.with_suffix(".json").write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"feature_version": 1}, "feature_version trained with 1, the target has 2"),
        ({"action_mapping": "wall-relative-v9"}, "action_mapping trained with 'wall-relative-v9'"),
        ({"observation_features": ["position", "is_conv"]}, "observation_features"),
        ({"format": 7}, "has format 7; expected 1"),
        ({"algo": "dqn"}, "unknown agent 'dqn'"),
    ],
)
def test_an_incompatible_agent_is_one_line_naming_the_mismatch(source, tmp_path, changes, message):
    agent = _edited(source[0], tmp_path, **changes)
    env = weight_env("smallcnn")
    with pytest.raises(IncompatibleAgentError, match=message) as info:
        TransferSearcher(env, source=agent)
    assert "\n" not in str(info.value)


def test_another_granularity_is_refused(source):
    env = make_env("smallcnn", evaluator_options=FAST)  # channel pruning
    with pytest.raises(IncompatibleAgentError, match="granularity trained with 'weight'"):
        transfer(source[0], env)


def test_a_file_that_is_not_an_agent_is_refused(source, tmp_path):
    env = weight_env("smallcnn")
    text = tmp_path / "text" / "agent.zip"
    text.parent.mkdir()
    text.write_text("not a zip")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("searcher.json", "{}")
    bare = tmp_path / "bare" / "agent.zip"  # an SB3 zip without its agent.json
    bare.parent.mkdir()
    shutil.copy(source[0], bare)
    cases = [(text, "not an agent \\(not a zip file\\)"),
             (other, "not a Stable-Baselines3 agent zip"),
             (bare, "has no agent.json beside it"),
             (tmp_path, "holds no agent"),
             (tmp_path / "missing.zip", "does not exist")]  # fmt: skip
    for path, message in cases:
        with pytest.raises(IncompatibleAgentError, match=message):
            transfer(path, env)


def test_the_metadata_is_checked_before_anything_is_played(source, tmp_path, monkeypatch):
    agent = _edited(source[0], tmp_path, feature_version=1)
    env = weight_env("smallcnn")
    played = []
    monkeypatch.setattr(env, "step", lambda *a: played.append(a))
    with pytest.raises(IncompatibleAgentError):
        transfer(agent, env, episodes=3)
    assert not played
