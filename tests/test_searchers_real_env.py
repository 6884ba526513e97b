"""Learning is real, on the real PruningEnv: the same observation, action mapping and
action wall as any search, with an evaluator whose proxy accuracy is a known function of
the rounded per-unit kept counts, so the best policy is proven by brute force."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_model
from torch import nn

from prunegym.agents import (
    SEARCHERS,
    CheckpointCallback,
    SearchCallback,
    SearchResult,
    make_searcher,
    play_episode,
)
from prunegym.agents.searchers import SOURCED
from prunegym.envs import ProxyResult, PruningEnv
from prunegym.experiments import DataSplits


class KnownEvaluator:
    """Proxy accuracy = ``base - sum_i weights[i] * s_i**2`` with ``s_i = 1 - kept_i /
    channels_i``: the sparsity the network really has after rounding, read from the
    policy's kept counts as the real evaluator's pruner would apply them."""

    def __init__(self, example_input: torch.Tensor, weights: Sequence[float], base: float = 0.9):
        self.device = torch.device("cpu")
        self.example_input = example_input
        self.base = base
        self.weights = np.asarray(weights, dtype=np.float64)

    def calibration_inputs(self) -> list:
        return []

    def calibration_pair(self) -> None:
        return None

    def accuracy(self, kept: Sequence[int], channels: np.ndarray) -> float:
        s = 1.0 - np.asarray(kept, dtype=np.float64) / channels
        return float(self.base - (self.weights * s * s).sum())

    def evaluate_model(self, model: nn.Module) -> ProxyResult:
        return ProxyResult(self.base, 0.0, 1, "dense", 0.0)

    def evaluate(self, pruner: Any, policy: Any) -> ProxyResult:
        kept = list(policy.kept(pruner.table).values())
        return ProxyResult(self.accuracy(kept, pruner.table.channels), 0.0, 1, "masked", 0.0)


WEIGHTS, RATIO = (0.26, 0.17, 0.19, 0.36, 0.13), 0.46


def _known_optimum_env() -> PruningEnv:
    """Five 64-channel convolutions in a chain (MACs bilinear in neighbouring counts),
    rounded to multiples of 8 (7 levels each, 16..64), MACs budget 0.46, reward the
    default retention."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for c_in in (1, 64, 64, 64, 64):
        layers += [nn.Conv2d(c_in, 64, 3, padding=1), nn.ReLU()]
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    ev = KnownEvaluator(torch.zeros(1, 1, 8, 8), WEIGHTS)
    return PruningEnv(model.eval(), evaluator=ev, ratio=RATIO)


def _brute_force(env: PruningEnv) -> list[tuple[float, tuple[int, ...]]]:
    """Every in-budget combination of the units' rounded levels, best reward first."""
    wall, ev = env.wall, env.evaluator
    levels = [[wall.level(u, i) for i in range(wall.level_index(u, int(wall.kept_max[u])) + 1)]
              for u in range(env.n_units)]  # fmt: skip
    feasible = (k for k in itertools.product(*levels) if env.target.within(np.array(k)))
    rows = [(ev.accuracy(k, env.table.channels) / ev.base, k) for k in feasible]
    return sorted(rows, reverse=True)


def test_the_known_optimum_is_proven_interior_and_scored_after_rounding():
    env = _known_optimum_env()
    rows = _brute_force(env)
    (best, kept), (second, _) = rows[0], rows[1]
    assert len(rows) > 10_000 and best - second > 0.002  # unique among 11682 candidates
    assert kept == (56, 32, 40, 48, 48)  # interior: no unit at its fewest (16) or all (64)
    reward, info = env.play([1 - k / 64 for k in kept])
    assert reward == pytest.approx(best) and tuple(info["kept_counts"]) == kept
    for action in (-1.0, -0.5, 0.0, 0.5, 1.0):  # no constant (saturated) actor gets there
        env.reset(seed=0)
        done = False
        while not done:
            *_, done, _, info = env.step(np.array([action], dtype=np.float32))
        assert info["reward"] < best - 0.005


def test_ddpg_beats_its_own_control_with_learning_rates_zero():
    """The same DDPG (AMC settings, 20 warm-up episodes, the same exploration noise) with
    learning rates 0 is the control: only learning differs. 100 episodes, seeds 0-2;
    gap = optimum - best reward found. Measured: ddpg [0.0064, 0.0042, 0.0042] (mean
    0.0049), control [0.0024, 0.0083, 0.0191] (mean 0.0099); for reference the
    budget-filling random search [0.0, 0.0042, 0.0026] (mean 0.0023) beats both."""
    optimum = _brute_force(_known_optimum_env())[0][0]
    frozen = {"learning_rate": 0.0, "critic_learning_rate": 0.0}
    gaps: dict[str, list[float]] = {"ddpg": [], "control": []}
    for seed in range(3):
        for name, extra in (("ddpg", {}), ("control", frozen)):
            env = _known_optimum_env()
            searcher = make_searcher("ddpg", env, seed=seed, warmup_episodes=20, **extra)
            result = searcher.search(env, 100, progress=False)
            assert result.search_best.reward <= optimum + 1e-12  # nothing beats the proof
            gaps[name].append(optimum - result.search_best.reward)
    assert np.mean(gaps["ddpg"]) < np.mean(gaps["control"]), gaps


def _tiny_env(**kwargs) -> PruningEnv:
    """smallcnn on 16 random 8x8 images: a real env (evaluator, wall, pruner) in ms."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    data = DataSplits.from_tensors((x, y), reward_val_size=16)
    model = make_model("smallcnn", in_channels=1)
    return PruningEnv(model, data, ratio=0.4, evaluator_options={"mode": "masked"}, **kwargs)


FAST = {"ddpg": {"warmup_episodes": 2}, "td3": {"warmup_episodes": 2},
        "sac": {"warmup_episodes": 2}, "ppo": {"rollout_episodes": 2}}  # fmt: skip


@pytest.mark.parametrize("name", [n for n in SEARCHERS if n not in SOURCED])  # see test_transfer*
def test_every_searcher_stays_inside_the_budget_on_the_real_env(name):
    env = _tiny_env()
    result = make_searcher(name, env, seed=0, **FAST.get(name, {})).search(env, 4, progress=False)
    budget = math.floor(Fraction(0.4) * env.table.total.macs)  # exact, no tolerance
    for rec in result.history:
        cost = env.table.cost(rec.policy)
        assert cost.macs <= budget
        assert list(rec.kept) == list(rec.policy.kept(env.table).values())
    assert env.table.cost(result.best_policy).macs <= budget


def _one_level_more_breaks_the_budget(env: PruningEnv, kept: list[int]) -> bool:
    """Whether the policy is within one rounding step under the budget: every unit keeps
    all it may, or giving some unit one more level would break the budget."""
    wall = env.wall
    for i, k in enumerate(kept):
        if k < wall.kept_max[i]:
            more = np.array(kept)
            more[i] = wall.level(i, wall.level_index(i, k) + 1)
            if not env.target.within(more):
                return True
    return bool(np.array_equal(kept, wall.kept_max))


def test_random_fills_the_budget_and_random_raw_does_not():
    env = _tiny_env()
    filled = make_searcher("random", env, seed=0).search(env, 12, progress=False)
    raw = make_searcher("random-raw", env, seed=0).search(env, 12, progress=False)
    for rec in filled.history:
        assert env.target.within(np.array(rec.kept))
        assert _one_level_more_breaks_the_budget(env, list(rec.kept)), rec.kept
    mean = {name: np.mean([r.metrics["macs_ratio"] for r in result.history])
            for name, result in (("filled", filled), ("raw", raw))}  # fmt: skip
    assert mean["raw"] < mean["filled"] <= 0.4, mean
    loose = sum(not _one_level_more_breaks_the_budget(env, list(r.kept)) for r in raw.history)
    assert loose >= 3  # uniform actions leave budget unused
    assert len({r.kept for r in filled.history}) > 6  # and random is still random


def test_an_rl_search_on_the_real_env_resumes_to_the_same_history(tmp_path):
    opts = {"warmup_episodes": 2}
    full = make_searcher("ddpg", _tiny_env(), seed=5, **opts).search(episodes=7, progress=False)
    ckpt = tmp_path / "ckpt.zip"
    stop = _StopAfter(4)
    make_searcher("ddpg", _tiny_env(), seed=5, **opts).search(
        episodes=7, callbacks=[stop, CheckpointCallback(ckpt, 3)], progress=False
    )
    env = _tiny_env()
    again = make_searcher("ddpg", env, seed=5, **opts)
    again.load_checkpoint(ckpt, env=env)
    assert len(again.history) == 4
    resumed = again.search(env, 7, progress=False)
    assert [r.comparable() for r in resumed.history] == [r.comparable() for r in full.history]


class _StopAfter(SearchCallback):
    def __init__(self, n):
        self.n = n

    def on_episode(self, searcher, record):
        if len(searcher.history) >= self.n:
            searcher.request_stop()


def test_records_carry_kept_counts_and_the_evaluators_cache_hits():
    env = _tiny_env()
    first = play_episode(env, lambda _obs, _t: 0.5, 0, seed=0)
    again = play_episode(env, lambda _obs, _t: 0.5, 1)
    other = play_episode(env, lambda _obs, _t: 0.9, 2)
    assert not first.cache_hit and again.cache_hit and not other.cache_hit
    assert first.kept == again.kept != other.kept
    assert list(first.kept) == list(first.policy.kept(env.table).values())
    assert first.row(env.unit_names)["cache_hit"] == 0 and again.row()["cache_hit"] == 1
    result = SearchResult(first, [first, again, other], env.unit_names)
    assert result.cache_hits == 1 and result.episodes == 3  # a hit is an evaluation too
    csv = result.to_csv().splitlines()
    column = csv[0].split(",").index("cache_hit")
    assert [row.split(",")[column] for row in csv[1:]] == ["0", "1", "0"]
