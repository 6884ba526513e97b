"""PruningEnv: the Gymnasium contract, determinism, the hard budget, the errors."""

from __future__ import annotations

import copy
import itertools
import warnings
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import make_model
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from torch import nn
from torch.utils.data import TensorDataset

import prunegym
from prunegym.envs import (
    CHANNEL_ENV_ID,
    FEATURES,
    OBSERVATION_SIZE,
    WEIGHT_ENV_ID,
    EvaluationError,
    Evaluator,
    ProxyResult,
    PruningEnv,
    RealLatency,
    game_of,
    make_pruning_env,
    make_reward,
)


def tiny_data(in_channels: int = 1, size: int = 8, n: int = 32, seed: int = 0) -> SimpleNamespace:
    """A data-like object: reward_val and train TensorDatasets of random images."""
    gen = torch.Generator().manual_seed(seed)

    def split(m: int) -> TensorDataset:
        x = torch.randn(m, in_channels, size, size, generator=gen)
        return TensorDataset(x, torch.randint(0, 10, (m,), generator=gen))

    return SimpleNamespace(reward_val=split(n), train=split(n))


FAST = {"mode": "masked", "bn_batches": 1, "bn_batch_size": 8, "batch_size": 64}


def make_env(arch: str = "smallcnn", size: int = 8, **kwargs: Any) -> PruningEnv:
    kwargs.setdefault("evaluator_options", FAST)
    return PruningEnv(make_model(arch, in_channels=1), tiny_data(size=size), **kwargs)


def episode(env: PruningEnv, actions: list[float], seed: int = 0) -> list[tuple]:
    """reset, then ``actions[unit]`` for each unit asked (single-level units are not)."""
    out = [env.reset(seed=seed)]
    unit = out[0][1]["index"]
    while True:
        out.append(env.step(np.array([actions[unit]], dtype=np.float32)))
        if out[-1][2]:
            return out
        unit = out[-1][4]["next_index"]


def without_seconds(info: dict) -> dict:
    return {k: v for k, v in info.items() if k != "seconds"}


# ----------------------------------------------------------------------------- API


@pytest.mark.parametrize("env_id", [CHANNEL_ENV_ID, WEIGHT_ENV_ID])
def test_check_env_passes_without_warnings(env_id: str) -> None:
    assert prunegym.envs.ENV_IDS == (CHANNEL_ENV_ID, WEIGHT_ENV_ID)
    model = make_model("smallcnn", in_channels=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id, model=model, data=tiny_data(), ratio=0.5, evaluator_options=FAST)
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
        env.close()


def test_weight_env_prunes_weights() -> None:
    env = gym.make(WEIGHT_ENV_ID, model=make_model("smallcnn", in_channels=1), data=tiny_data(),
                   ratio=0.3, max_sparsity=0.95, evaluator_options=FAST)  # fmt: skip
    base = env.unwrapped
    assert base.table.granularity == "weight" and base.round_to == 1
    env.reset(seed=0)
    env.action_space.seed(0)
    terminated = False
    while not terminated:
        *_, terminated, _, info = env.step(env.action_space.sample())
    assert info["policy"].granularity == "weight"
    assert info["macs_ratio"] <= 0.3 and info["params_ratio"] < 1.0
    with pytest.raises(ValueError, match="prunes weights"):
        gym.make(WEIGHT_ENV_ID, model=make_model("smallcnn", in_channels=1), data=tiny_data(),
                 granularity="channel")  # fmt: skip


def test_same_seed_and_actions_give_same_observations_rewards_info() -> None:
    actions = [0.3, -0.7, 0.9, 0.1]
    runs = []
    for _ in range(2):  # two independent environments
        env = make_env(evaluator_options={**FAST, "mode": "physical", "bn_batches": 2})
        runs.append(episode(env, actions, seed=7))
    (obs0, info0), (obs1, info1) = runs[0][0], runs[1][0]
    assert np.array_equal(obs0, obs1) and info0 == info1
    for a, b in zip(runs[0][1:], runs[1][1:], strict=True):
        assert np.array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
        assert without_seconds(a[4]) == without_seconds(b[4])
    assert runs[0][-1][2] is True and runs[0][-1][1] != 0.0


@pytest.mark.parametrize("arch", ["resnet20", "vgg11", "mobilenetv2"])
def test_episode_length_is_units_and_observation_shape_is_model_free(arch: str) -> None:
    env = make_env(arch)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (OBSERVATION_SIZE,) == env.observation_space.shape
    steps, terminated, rewards = 0, False, []
    while not terminated:
        assert obs.dtype == np.float32 and env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards.append(reward)
        steps += 1
        assert not truncated
    assert steps + len(info["skipped_units"]) == env.n_units == len(env.table)
    assert rewards[:-1] == [0.0] * (steps - 1) and rewards[-1] != 0.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_first_observation_describes_the_first_unit() -> None:
    env = make_env("resnet20")
    obs, _ = env.reset(seed=0)
    feature = {name: float(obs[i]) for i, (name, _) in enumerate(FEATURES)}
    assert feature["position"] == 0.0  # a regular convolution: neither depthwise nor linear
    assert feature["is_depthwise"] == 0.0 and feature["is_linear"] == 0.0
    assert feature["macs_removed"] == 0.0 and feature["previous_sparsity"] == 0.0
    assert feature["target_ratio"] == pytest.approx(0.5)
    assert feature["to_remove"] == pytest.approx(0.5, abs=1e-6)


def test_observation_after_the_first_step_and_at_the_end() -> None:
    env = make_env("resnet20", ratio=0.5)
    n, total = env.n_units, env.table.total
    env.reset(seed=0)
    obs, _, _, _, info = env.step(np.array([env.action_for_sparsity(0.5)], np.float32))
    f = {name: float(obs[i]) for i, (name, _) in enumerate(FEATURES)}
    kept = env.table.channels.copy()
    kept[0] = info["kept"]
    now = env.table.cost_of_kept(kept)
    assert f["position"] == pytest.approx(1 / (n - 1))
    assert f["previous_sparsity"] == pytest.approx(info["sparsity"]) and info["sparsity"] == 0.5
    assert f["macs_removed"] == pytest.approx(1 - now.macs / total.macs, abs=1e-6)
    assert f["params_removed"] == pytest.approx(1 - now.params / total.params, abs=1e-6)
    budget = int(Fraction(1, 2) * total.macs)
    assert f["to_remove"] == pytest.approx((now.macs - budget) / total.macs, abs=1e-6)
    assert f["out_channels"] == pytest.approx(
        np.log2(1 + env.table[1].out_channels) / np.log2(1 + 8192), abs=1e-6
    )
    terminated = False
    while not terminated:  # the rest at max_sparsity: the wall lets every unit go there
        obs, _, terminated, _, info = env.step(np.ones(1, np.float32))
    f = {name: float(obs[i]) for i, (name, _) in enumerate(FEATURES)}
    assert f["position"] == 1.0 and f["to_remove"] == 0.0 and f["min_allowed"] == 0.0
    assert f["previous_sparsity"] == pytest.approx(info["sparsities"][-1])
    assert f["macs_removed"] == pytest.approx(1 - info["macs_ratio"], abs=1e-6)
    assert f["params_removed"] == pytest.approx(1 - info["params_ratio"], abs=1e-6)
    assert f["target_ratio"] == pytest.approx(0.5)


def test_the_wall_floor_is_observed_and_is_where_the_action_range_starts() -> None:
    env = make_env("resnet20", ratio=0.25)
    obs, _ = env.reset(seed=0)
    floors, terminated = [], False
    where = [name for name, _ in FEATURES].index("min_allowed")
    while not terminated:
        floor = float(obs[where])
        floors.append(floor)
        assert env.sparsity_for_action(-1.0) == pytest.approx(floor, abs=1e-6)
        assert env.sparsity_for_action(1.0) == env.max_sparsity
        obs, *_, terminated, _, info = env.step(np.array([-1.0], np.float32))  # the least
        assert info["sparsity"] == pytest.approx(floor, abs=1e-6)  # exactly the floor
    assert max(floors) > 0 and info["target"]["achieved"] <= info["target"]["budget"]


# ----------------------------------------------------------------------------- budget

_ENVS: dict[tuple[str, str], PruningEnv] = {}


def budget_env(arch: str, target: str) -> PruningEnv:
    if (arch, target) not in _ENVS:
        _ENVS[(arch, target)] = make_env(
            arch, target=target, ratio=0.4,
            evaluator_options={**FAST, "subset_size": 4, "bn_recalibration": False},
        )  # fmt: skip
    return _ENVS[(arch, target)]


@settings(max_examples=25, deadline=None)
@given(
    arch=st.sampled_from(["resnet20", "mobilenetv2"]),
    target=st.sampled_from(["macs", "params"]),
    data=st.data(),
)
def test_any_action_sequence_ends_within_budget(
    arch: str, target: str, data: st.DataObject
) -> None:
    """No tolerance: the integer cost of the rounded policy <= ratio x dense, exactly."""
    env = budget_env(arch, target)
    actions = data.draw(st.lists(st.floats(-3.0, 3.0), min_size=env.n_units,
                                 max_size=env.n_units))  # fmt: skip
    *_, info = episode(env, actions)[-1]
    cost = env.table.cost(info["policy"])  # recount from the policy alone, after rounding
    assert Fraction(getattr(cost, target)) <= Fraction(0.4) * getattr(env.table.total, target)
    assert info["target"]["achieved"] <= info["target"]["budget"]
    assert np.array_equal(env.table.kept_counts(np.array(info["sparsities"]), 8),
                          info["kept_counts"])  # fmt: skip


def _kept_after(env: PruningEnv, prefix: list[float], action: float) -> tuple[int, int, int, float]:
    """(unit, its levels, its kept count, the wall's floor) when the first unit asked
    after ``prefix`` (actions of the units asked before it) takes ``action``."""
    _, info = env.reset(seed=0)
    for a in prefix:
        _, _, terminated, _, info = env.step(np.array([a], dtype=np.float32))
        assert not terminated
    unit, levels, floor = env.step_index, env.levels, env.min_allowed_sparsity()
    *_, info = env.step(np.array([action], dtype=np.float32))
    assert info["index"] == unit and info["levels"] == levels
    return unit, levels, info["kept"], floor


@settings(max_examples=25, deadline=None)
@given(
    arch=st.sampled_from(["resnet20", "mobilenetv2"]),
    target=st.sampled_from(["macs", "params"]),
    data=st.data(),
)
def test_every_action_bin_is_a_different_level_of_what_the_wall_allows(
    arch: str, target: str, data: st.DataObject
) -> None:
    """At any state: the action range is cut into one equal bin per level the wall
    allows; -1 keeps the most the wall allows, +1 the fewest, and two actions in different
    bins give different kept counts (no flat region, no level out of reach)."""
    env = budget_env(arch, target)
    env.reset(seed=0)
    steps = 0
    prefix = data.draw(st.lists(st.floats(-1.0, 1.0), max_size=6))
    for a in prefix:  # walk a random prefix as far as the episode goes
        terminated = env.step(np.array([a], dtype=np.float32))[2]
        if terminated:
            break
        steps += 1
    prefix = prefix[:steps]
    episode(env, [0.0] * env.n_units)  # leave no episode half-done between examples
    unit, levels, most, floor = _kept_after(env, prefix, -1.0)
    assert levels >= 2  # single-level units are never asked
    assert most == env.wall.kept_one(unit, floor)  # the most the wall allows
    assert _kept_after(env, prefix, 1.0)[2] == env.wall.kept_min[unit]  # the fewest
    centres = [-1.0 + 2.0 * (j + 0.5) / levels for j in range(levels)]
    kept = [_kept_after(env, prefix, a)[2] for a in centres]
    assert all(k1 > k2 for k1, k2 in itertools.pairwise(kept))  # all distinct
    a, b = sorted(data.draw(st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=2)))
    bins = [min(int((x + 1) / 2 * levels), levels - 1) for x in (a, b)]
    ka, kb = _kept_after(env, prefix, a)[2], _kept_after(env, prefix, b)[2]
    assert (ka > kb) == (bins[0] != bins[1]) and ka >= kb


def _three_units() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()  # fmt: skip


def test_single_level_units_are_applied_without_a_step() -> None:
    # unit 0 has 4 channels: rounded to multiples of 8 it can only keep all 4
    env = PruningEnv(_three_units(), tiny_data(), ratio=1.0, evaluator_options=FAST)
    assert env.levels == 0 and env.min_allowed_sparsity() == 0.0  # no episode yet
    _, info = env.reset(seed=0)
    assert (info["index"], info["skipped"], info["levels"]) == (1, [0], 2)
    _, _, done, _, info = env.step(np.array([1.0], np.float32))
    assert not done and info["index"] == 1 and info["next_index"] == 2 and info["skipped"] == []
    *_, done, _, info = env.step(np.array([1.0], np.float32))
    assert done and info["skipped_units"] == [0] and info["kept_counts"] == [4, 8, 8]
    # at the floor of the budget every unit is forced: one step, on the last unit
    floor = env.wall.floor / env.target.dense_cost
    tight = PruningEnv(_three_units(), tiny_data(), ratio=floor + 1e-12, evaluator_options=FAST)
    _, info = tight.reset(seed=0)
    assert (info["index"], info["skipped"], info["levels"]) == (2, [0, 1], 1)
    *_, done, _, info = tight.step(np.array([-1.0], np.float32))
    assert done and info["skipped_units"] == [0, 1] and info["kept_counts"] == [4, 8, 8]
    # a budget that binds once unit 1 keeps all it may: unit 2 is then forced
    late = PruningEnv(_three_units(), tiny_data(), ratio=0.8, evaluator_options=FAST)
    _, info = late.reset(seed=0)
    assert (info["index"], info["skipped"]) == (1, [0])
    *_, done, _, info = late.step(np.array([-1.0], np.float32))
    assert done and (info["skipped"], info["next_index"]) == ([2], 3)
    assert info["kept_counts"] == [4, 16, 8] and info["skipped_units"] == [0, 2]


def test_loose_budget_keeps_the_requested_sparsities() -> None:
    env = make_env("resnet20", ratio=1.0)
    wanted = list(np.linspace(0.0, 0.8, env.n_units))
    _, info = env.play(wanted)
    assert info["kept_counts"] == env.table.kept_counts(np.array(wanted), 8).tolist()
    # the policy holds the applied levels: 1 - kept / channels, within the bounds
    level = np.clip(1 - np.array(info["kept_counts"]) / env.table.channels, 0.0, 0.8)
    assert info["sparsities"] == pytest.approx(level.tolist())


def test_action_for_sparsity_yields_exactly_that_kept_count() -> None:
    env = make_env("resnet20", ratio=1.0)
    for s in (0.0, 0.25, 0.5, 0.5 - 1e-12, 0.75, 0.8):
        _, info = env.play([s] * env.n_units)
        assert info["kept_counts"] == env.table.kept_counts(np.full(env.n_units, s), 8).tolist()
    with pytest.raises(RuntimeError, match="no unit to decide"):
        env.action_for_sparsity(0.3)  # the episode is over


def test_within_budget_predicts_an_unclipped_episode() -> None:
    env = make_env("resnet20", ratio=0.5)
    rng = np.random.default_rng(0)
    played = {True: 0, False: 0}
    for _ in range(12):
        wanted = np.clip(rng.uniform(0.3, 0.6) + rng.normal(0, 0.1, env.n_units), 0, 0.8)
        _, info = env.play(list(wanted))
        inside = env.within_budget(wanted)
        played[inside] += 1
        limited = info["kept_counts"] != env.wall.kept(wanted).tolist()
        assert limited != inside  # the wall limits the request exactly when it is over
        if inside:
            assert info["macs_ratio"] == pytest.approx(env.cost_ratio(wanted))
    assert played[True] and played[False]
    assert info["accuracy"] == info["metrics"]["accuracy"]


# ----------------------------------------------------------------------------- errors


def test_unreachable_budget_is_an_error_at_construction() -> None:
    with pytest.raises(ValueError, match=r"smallest reachable macs ratio is 0\.\d+"):
        make_env("resnet20", ratio=0.02)


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5, float("nan"), float("inf"), True, "0.5", None])
def test_target_ratio_outside_unit_interval_is_an_error(ratio: Any) -> None:
    with pytest.raises(ValueError, match=r"ratio must be .*\(0, 1\]"):
        make_env(ratio=ratio)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "flops"}, "unknown target"),
        ({"min_sparsity": 0.5, "max_sparsity": 0.4}, "min_sparsity <= max_sparsity"),
        ({"max_sparsity": 1.0}, "max_sparsity < 1"),
        ({"reward": "nope"}, "unknown reward"),
        ({"reward": "amc", "reward_weights": {"macs": 1.0}}, "has no weight"),
        ({"round_to": 0}, "round_to"),
        ({"granularity": "weight", "target": "latency"}, "channel pruning"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_options_are_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_env(**kwargs)


def test_bad_actions_are_errors() -> None:
    env = make_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, dtype=np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match="one value"):
        env.step(np.zeros(2, dtype=np.float32))


class _SpatialNorm(nn.Module):
    """Divide each channel by its spatial sum: a pruned (all-zero) channel gives 0/0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.sum(dim=(2, 3), keepdim=True)


def test_nan_accuracy_is_an_error_with_the_policy_attached() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), _SpatialNorm(),
        nn.Conv2d(16, 16, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()  # fmt: skip
    with torch.no_grad():
        model[1].bias.fill_(1.0)  # ReLU outputs stay positive: the dense model is finite
    env = PruningEnv(model, tiny_data(), ratio=0.9, evaluator_options=FAST)
    env.reset(seed=0)
    with pytest.raises(EvaluationError, match="NaN") as caught:
        for _ in range(env.n_units):
            env.step(np.ones(1, dtype=np.float32))
    assert caught.value.policy is not None and caught.value.policy.sparsities
    assert isinstance(caught.value, ValueError)


# ----------------------------------------------------------------------------- state


def test_the_callers_model_is_never_touched() -> None:
    model = make_model("resnet20", in_channels=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    env = PruningEnv(model, tiny_data(), ratio=0.5, evaluator_options={**FAST, "mode": "auto"})
    for seed in range(3):
        episode(env, list(np.linspace(-1, 1, env.n_units)), seed=seed)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training
    private = env.model.state_dict()  # the private copy is unmasked between episodes
    assert all(torch.equal(before[k], private[k]) for k in before)


def test_terminal_info_has_everything_a_searcher_needs() -> None:
    env = make_env("smallcnn", reward="tradeoff", reward_weights={"macs": 0.5})
    reward, info = env.play([0.5] * env.n_units)
    for key in ("policy", "requested_sparsities", "sparsities", "kept_counts", "metrics",
                "reward_terms", "target", "evaluation", "seconds"):  # fmt: skip
        assert key in info
    m = info["metrics"]
    terms = info["reward_terms"]
    expected = m["accuracy"] / m["dense_accuracy"] + 0.5 * (1 - m["macs_ratio"])
    expected += 0.2 * (1 - m["params_ratio"])
    assert reward == pytest.approx(expected)
    assert terms["macs_reduction"] == pytest.approx(1 - m["macs_ratio"])
    assert info["policy"].kept(env.table) == dict(zip(env.table.names, info["kept_counts"],
                                                      strict=True))  # fmt: skip
    assert info["seconds"]["episode"] >= info["seconds"]["evaluation"] > 0
    again, info2 = env.play([0.5] * env.n_units)
    assert again == reward and info2["evaluation"]["cached"]


def test_reconstruction_is_on_wherever_a_train_split_exists() -> None:
    with_train = make_env("smallcnn")
    assert with_train.settings["reconstruction"] and with_train.pruner.reconstruction is not None
    no_train = PruningEnv(make_model("smallcnn", in_channels=1),
                          SimpleNamespace(reward_val=tiny_data().reward_val),
                          evaluator_options=FAST)  # fmt: skip
    assert not no_train.settings["reconstruction"] and no_train.pruner.reconstruction is None
    off = make_env("smallcnn", reconstruction=False)
    assert off.pruner.reconstruction is None
    weights = make_env("smallcnn", granularity="weight", max_sparsity=0.9)
    assert not weights.settings["reconstruction"]


def _consumer_ranked_model() -> nn.Module:
    """conv0's 4 filters grow with the channel index; conv1's weights on each of its
    input channels shrink with it: l1 and AMC's consumer ranking disagree."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 10),
    )  # fmt: skip
    with torch.no_grad():
        for c in range(4):
            model[0].weight[c].fill_(0.1 * (c + 1))
            model[2].weight[:, c].fill_(0.1 * (4 - c))
    return model.eval()


def test_the_amc_preset_ranks_by_the_consumer_and_refits() -> None:
    env = PruningEnv(_consumer_ranked_model(), tiny_data(), preset="amc", round_to=1, ratio=0.9)
    s = env.settings
    assert (s["importance"], s["reward"], s["reconstruction"]) == ("consumer_l1", "accuracy", True)
    assert (env.min_sparsity, env.max_sparsity, env.round_to) == (0.0, 0.8, 1)  # round_to given
    assert env.pruner.reconstruction is not None and not env.evaluator.bn_recalibration
    policy = env.pruner.policy([0.5, 0.0])
    removed = env.pruner.removed_channels(policy)[env.unit_names[0]]
    conv1 = env.model[2].weight.detach().abs().sum(dim=(0, 2, 3))  # what reads each channel
    assert removed.tolist() == sorted(np.argsort(conv1.numpy(), kind="stable")[:2].tolist())
    assert removed.tolist() == [2, 3]  # not l1's [0, 1]
    reward, info = env.play([0.5, 0.0])
    assert reward == info["accuracy"] and info["reward_name"] == "accuracy"
    default = PruningEnv(_consumer_ranked_model(), tiny_data(n=120), preset="amc", ratio=1.0)
    assert default.round_to == 8  # AMC's calibration: batches of 50 training images
    assert [len(x) for x, _ in default.evaluator.calibration] == [50, 50, 20]
    with pytest.raises(ValueError, match="unknown preset"):
        make_env(preset="haq")


def test_rewards_registry() -> None:
    metrics = {"accuracy": 0.9, "dense_accuracy": 0.95, "macs": 1e6, "params": 1e4,
               "macs_ratio": 0.5, "params_ratio": 0.4}  # fmt: skip
    amc = make_reward("amc")(metrics)
    assert amc.value == pytest.approx(-0.1 * np.log(1e6)) and set(amc.terms) == {
        "error",
        "log_macs",
    }
    assert make_reward("accuracy")(metrics).value == 0.9
    retention = make_reward("retention")(metrics)
    assert retention.value == pytest.approx(0.9 / 0.95)
    assert retention.terms == {"accuracy_retention": retention.value}
    trade = make_reward("tradeoff", {"accuracy": 2.0, "params": 0.0})(metrics)
    assert trade.value == pytest.approx(2 * 0.9 / 0.95 + 0.2 * 0.5)


class _FixedRetention:
    """A stand-in evaluator (the env's public ``evaluator=``): the dense model scores
    ``dense``, every pruned candidate ``retention * dense``."""

    def __init__(self, dense: float, retention: float, example_input: torch.Tensor) -> None:
        self.device = torch.device("cpu")
        self.example_input = example_input
        self.dense, self.retention = dense, retention

    def calibration_inputs(self) -> list:
        return []

    def calibration_pair(self) -> None:
        return None

    def evaluate_model(self, model: nn.Module) -> ProxyResult:
        return ProxyResult(self.dense, 0.0, 1, "dense", 0.0)

    def evaluate(self, pruner: Any, policy: Any) -> ProxyResult:
        return ProxyResult(self.retention * self.dense, 0.0, 1, "masked", 0.0)


def test_the_default_reward_has_the_same_scale_on_small_and_large_models() -> None:
    """smallcnn on 8x8 inputs (3 MMACs) and MobileNetV2 on 32x32 (~90 MMACs), different
    dense accuracies:
    the same accuracy retention is the same reward, in [0, 1] (``amc`` would differ by the
    log of each model's MACs)."""
    rewards: dict[float, list[float]] = {}
    macs = []
    for arch, dense, size in (("smallcnn", 0.62, 8), ("mobilenetv2", 0.93, 32)):
        for retention in (0.5, 0.9, 1.0):
            ev = _FixedRetention(dense, retention, torch.zeros(1, 1, size, size))
            env = PruningEnv(make_model(arch, in_channels=1), evaluator=ev, ratio=0.5)
            reward, info = env.play([0.6] * env.n_units)
            assert info["reward_name"] == "retention"
            rewards.setdefault(retention, []).append(reward)
        macs.append(env.table.total.macs)
    assert macs[1] > 20 * macs[0]  # very different sizes
    for retention, pair in rewards.items():
        assert pair == pytest.approx([retention, retention])


def test_latency_target_uses_a_lookup_and_reports_real_latency() -> None:
    env = make_pruning_env(
        make_model("smallcnn", in_channels=1), tiny_data(), target="latency", ratio=0.95,
        evaluator_options=FAST,
        latency_options={"levels": (0.25, 1.0), "repeats": 3, "warmup": 1, "dense_repeats": 5,
                         "batch_size": 16},
    )  # fmt: skip
    lt = env.get_wrapper_attr("target").latency_table
    assert lt is not None and lt.dense_ms > 0
    assert lt.estimate(env.unwrapped.table.channels) == pytest.approx(lt.dense_ms)  # exact
    assert 0 < lt.estimate(env.unwrapped.wall.kept_min) <= lt.dense_ms  # positive, <= dense
    _, info = play(env, [0.0] * env.unwrapped.n_units)
    m = info["metrics"]
    assert m["latency_estimate_ms"] <= 0.95 * lt.dense_ms + 1e-12
    assert m["latency_ms"] > 0 and m["latency_ratio"] == pytest.approx(
        m["latency_ms"] / m["dense_latency_ms"]
    )
    assert "latency" in info["seconds"]


def test_an_explicit_evaluator_and_tensor_data_work() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    evaluator = Evaluator((x, y), mode="masked")
    assert not evaluator.bn_recalibration  # no calibration data: recalibration is off
    env = PruningEnv(make_model("smallcnn", in_channels=1), evaluator=evaluator, ratio=0.6)
    assert env.evaluator is evaluator and env.example_input.shape == (1, 1, 8, 8)
    _, info = env.play([0.5] * env.n_units)
    assert info["metrics"]["eval_samples"] == 16 - 16 // 5  # a fifth is held out
    with pytest.raises(ValueError, match="reward_val"):
        PruningEnv(make_model("smallcnn", in_channels=1), object())
    with pytest.raises(ValueError, match="data="):
        PruningEnv(make_model("smallcnn", in_channels=1))


def test_tensor_data_is_refused_with_a_pointer_to_data_splits() -> None:
    """``data=(x, y)`` had no train split: BN recalibration went silently off."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    for data in ((x, y), [x, y]):
        with pytest.raises(ValueError, match=r"DataSplits\.from_tensors\(train=\(x, y\)\)") as e:
            PruningEnv(make_model("smallcnn", in_channels=1), data, ratio=0.6)
        assert "\n" not in str(e.value)


class _CountsCopies(nn.Sequential):
    """A model that counts how often it is deep-copied."""

    copies = 0

    def __deepcopy__(self, memo: dict) -> _CountsCopies:
        type(self).copies += 1
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone


def test_env_spec_holds_the_callers_model_and_never_copies_it() -> None:
    torch.manual_seed(0)
    model = _CountsCopies(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()  # fmt: skip
    data = tiny_data()
    env = gym.make(CHANNEL_ENV_ID, model=model, data=data, evaluator_options=FAST)
    made = _CountsCopies.copies  # the env's own private copy (and its helpers')
    assert made >= 1
    specs = [env.spec for _ in range(3)] + [env.unwrapped.spec]
    specs += [w.spec for w in _wrappers(env)]
    assert all(s is not None and s.kwargs["model"] is model for s in specs)
    assert all(s.kwargs["data"] is data for s in specs)
    assert _CountsCopies.copies == made  # no access copied the model
    again = gym.make(env.spec)  # the spec still makes the same env
    assert again.unwrapped.n_units == env.unwrapped.n_units


def _wrappers(env: gym.Env) -> list[gym.Wrapper]:
    out = []
    while isinstance(env, gym.Wrapper):
        out.append(env)
        env = env.env
    return out


def test_real_latency_can_be_reported_for_a_macs_target() -> None:
    model = make_model("smallcnn", in_channels=1)
    env = make_pruning_env(model, tiny_data(), measure_latency=True, evaluator_options=FAST,
                           latency_options={"dense_repeats": 3})  # fmt: skip
    assert isinstance(env, RealLatency)
    assert env.get_wrapper_attr("target").latency_table is None
    _, info = play(env, [0.5] * env.unwrapped.n_units)
    assert info["latency_ratio"] == info["metrics"]["latency_ratio"] > 0
    assert info["metrics"]["latency_ms"] > 0 and "latency" in info["seconds"]
    assert "latency_estimate_ms" not in info["metrics"]
    plain = make_pruning_env(model, tiny_data(), evaluator_options=FAST)
    assert isinstance(plain, PruningEnv)  # a MACs target is not timed unless asked
    with pytest.raises(ValueError, match="channel pruning"):
        make_pruning_env(model, tiny_data(), granularity="weight", measure_latency=True,
                         evaluator_options=FAST)  # fmt: skip


def play(env: gym.Env, sparsities: list[float]) -> tuple[float, dict]:
    """One episode through any wrappers (``PruningEnv.play`` without them)."""
    game = game_of(env)
    _, info = env.reset(seed=0)
    unit = info["index"]
    while True:
        action = np.array([game.action_for_sparsity(sparsities[unit])], dtype=np.float32)
        _, reward, terminated, _, info = env.step(action)
        if terminated:
            return float(reward), info
        unit = info["next_index"]


# ----------------------------------------------------------------------------- imports


def _python(code: str) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=True)  # fmt: skip
    return done.stdout.strip()


def test_the_pruning_engine_imports_no_gymnasium() -> None:
    code = "import sys, prunegym.pruners, prunegym; print('gymnasium' in sys.modules)"
    assert _python(code) == "False"


@pytest.mark.parametrize("first", ["prunegym", "gymnasium"])
def test_gym_make_works_after_import_prunegym_in_either_order(first: str) -> None:
    second = "gymnasium" if first == "prunegym" else "prunegym"
    code = (f"import {first}, {second}, gymnasium as gym; "
            "print(sorted(i for i in gym.registry if i.startswith('prunegym/')))")  # fmt: skip
    assert _python(code) == str(sorted(prunegym.envs.ENV_IDS))
