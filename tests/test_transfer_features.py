"""Observation features, version 2: what carries over between models, and the game's
description that a saved agent is checked against."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from test_env import make_env

from prunegym.envs import (
    CHANNEL_ENV_ID,
    FEATURE_NAMES,
    FEATURE_VERSION,
    OBSERVATION_SIZE,
    describe_game,
    game_of,
)
from prunegym.envs.observation import static_features


def _column(env, name: str) -> np.ndarray:
    return static_features(env.table)[:, FEATURE_NAMES.index(name)]


def test_the_versioned_feature_list_is_the_observation():
    env = make_env("smallcnn")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (OBSERVATION_SIZE,) == (len(FEATURE_NAMES),)
    assert FEATURE_VERSION == 2 and "is_conv" not in FEATURE_NAMES  # no information of its own
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


def test_a_residual_group_is_told_from_a_plain_layer():
    resnet, vgg = make_env("resnet20"), make_env("vgg11")
    coupled = _column(resnet, "coupled_layers")
    for unit, value in zip(resnet.table, coupled, strict=True):
        convs = {m.name for m in unit.members if m.direction == "out" and m.module_type == "Conv2d"}
        assert value == pytest.approx(math.log2(len(convs)) / 6)
    assert coupled[0] > 0 and (coupled == 0).any()  # the stem's stage group vs a block conv
    assert np.all(_column(vgg, "coupled_layers") == 0)  # no residual: every unit is one layer


def test_relative_size_does_not_shrink_with_depth_as_the_shares_do():
    shallow, deep = make_env("resnet20"), make_env("resnet56")
    share = [float(_column(e, "macs_share").mean()) for e in (shallow, deep)]
    relative = [float(_column(e, "relative_macs").mean()) for e in (shallow, deep)]
    assert share[1] < share[0] / 2  # 2.5x the units: every share of the total is smaller
    assert relative[1] == pytest.approx(relative[0], abs=0.03)


def test_the_game_description_is_read_through_wrappers():
    env = make_env("mobilenetv2", ratio=0.4, round_to=4, max_sparsity=0.7)
    wrapped = gym.make(CHANNEL_ENV_ID, model=env.model, data=None, evaluator=env.evaluator,
                       ratio=0.4, round_to=4, max_sparsity=0.7)  # fmt: skip
    assert isinstance(wrapped, gym.Wrapper)
    d = describe_game(wrapped)
    assert d == env.game_description()
    assert d["feature_version"] == FEATURE_VERSION
    assert d["observation_features"] == list(FEATURE_NAMES)
    assert d["action_mapping"] == game_of(wrapped).action_mapping == env.action_mapping
    assert (d["granularity"], d["round_to"], d["target_kind"]) == ("channel", 4, "macs")
    assert (d["target_ratio"], d["max_sparsity"], d["reward_name"]) == (0.4, 0.7, "retention")
    assert d["unit_kinds"] == [u.kind for u in env.table]
    assert d["unit_channels"] == env.table.channels.tolist() and len(d["unit_kinds"]) == env.n_units


def test_a_game_without_a_description_is_a_type_error():
    class Plain(gym.Env):
        observation_space = gym.spaces.Box(0, 1, (1,))
        action_space = gym.spaces.Box(-1, 1, (1,))

    with pytest.raises(TypeError, match="does not describe its game"):
        describe_game(Plain())
