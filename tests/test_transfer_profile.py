"""Profile transfer: a source policy's shape mapped by depth and kind, filling the target's
budget within one rounding step."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from test_env import make_env

from prunegym.agents import ProfileSearcher, make_searcher
from prunegym.agents.profile import map_profile, read_profile
from prunegym.pruners import PruningPolicy

FAST = {"mode": "masked", "bn_batches": 1, "bn_batch_size": 8, "batch_size": 64, "subset_size": 8}


def test_the_profile_is_mapped_by_relative_depth_within_each_kind():
    source = [0.2, 0.6, 0.9]  # conv at depth 0, conv at depth 0.5, linear at depth 1
    target = ["conv", "conv", "conv", "depthwise", "linear"]
    mapped = map_profile(source, ["conv", "conv", "linear"], target)
    # conv units: the two source convs interpolated over depth (0.6 beyond 0.5);
    # depthwise: none in the source, so all source units by depth (0.75 -> 0.75)
    assert mapped == pytest.approx([0.2, 0.4, 0.6, 0.75, 0.9])
    assert map_profile(source, None, target) == pytest.approx([0.2, 0.4, 0.6, 0.75, 0.9])
    assert map_profile(source, ["conv"] * 3, ["linear", "linear"]) == pytest.approx([0.2, 0.9])


def _source_policy(tmp_path):
    """A resnet20 policy pruning deeper units harder, written as a run's best policy."""
    env = make_env("resnet20", evaluator_options=FAST)
    s = np.linspace(0.1, 0.7, env.n_units)
    policy = PruningPolicy.from_array(env.table, s)
    run = tmp_path / "source-run"
    run.mkdir()
    policy.to_json(run / "best_policy.json")
    game = env.game_description()
    (run / "game.json").write_text(json.dumps({"games": [game], "sources": [{}]}))
    return run, s


def _one_step_more_is_over_budget(env, s):
    """Every unit either keeps all it may, or keeping round_to more exceeds the budget."""
    kept = env.wall.kept(s)
    for j in range(env.n_units):
        if kept[j] >= env.wall.kept_max[j]:
            continue
        more = kept.copy()
        more[j] = min(kept[j] + env.round_to, env.wall.kept_max[j])
        if env.target.within(more):
            return False
    return True


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_profile_onto_a_deeper_network_fills_its_budget_within_one_rounding_step(tmp_path, ratio):
    run, source = _source_policy(tmp_path)
    env = make_env("resnet56", ratio=ratio, evaluator_options=FAST)
    assert env.n_units > len(source)
    searcher = make_searcher("profile", env, seed=0, source=run)
    assert searcher.profile.kinds == tuple(["conv"] * len(source))  # read from game.json
    s = searcher.plan(env)
    assert env.within_budget(s) and _one_step_more_is_over_budget(env, s)
    budget = math.floor(Fraction(ratio) * env.table.total.macs)
    slack = budget - env.table.cost_of_kept(env.wall.kept(s)).macs
    assert 0 <= slack < 0.02 * budget
    half = env.n_units // 2
    assert s[:half].mean() + 0.05 < s[half:].mean()  # the source's shape: deeper, sparser
    result = searcher.search(env, 5, progress=False)
    assert result.episodes == 1  # deterministic: evaluated once
    assert list(result.best.kept) == env.wall.kept(s).tolist()  # the game's levels of s
    assert env.table.cost(result.best_policy).macs <= budget


def test_an_unpruned_source_gives_the_uniform_budget_filling_policy(tmp_path):
    env = make_env("vgg11", ratio=0.5, evaluator_options=FAST)
    zero = PruningPolicy({"a": 0.0, "b": 0.0})
    s = ProfileSearcher(env, source=zero).plan(env)
    assert env.within_budget(s) and _one_step_more_is_over_budget(env, s)
    assert np.ptp(s) < 0.2  # no shape to keep: nearly one sparsity, topped up by steps


def test_profile_errors_are_one_line(tmp_path):
    env = make_env("smallcnn", evaluator_options=FAST)
    with pytest.raises(ValueError, match=r"has no best_policy\.json"):
        ProfileSearcher(env, source=tmp_path)
    with pytest.raises(ValueError, match="needs source="):
        ProfileSearcher(env)
    weights = PruningPolicy({"a": 0.5}, granularity="weight")
    with pytest.raises(ValueError, match="is a weight policy; the target prunes channels"):
        ProfileSearcher(env, source=weights)
    binary = tmp_path / "agent.zip"
    binary.write_bytes(b"PK\x03\x04\xbb\xff")
    with pytest.raises(ValueError, match="is not a prunegym policy \\(not text\\)"):
        read_profile(binary)
    with pytest.raises(ValueError, match="2 unit kinds for 1 units"):
        read_profile(weights, kinds=["conv", "linear"])
