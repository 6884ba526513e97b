"""Learning is real, on the real PruningEnv: the same observation, action mapping and
action wall as any search, with an evaluator whose proxy accuracy is a known function of
the per-unit sparsities, so the best policy is known."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import make_model

from prunegym.agents import (
    SEARCHERS,
    CheckpointCallback,
    SearchCallback,
    SearchResult,
    make_searcher,
    play_episode,
)
from prunegym.envs import ProxyResult, PruningEnv
from prunegym.experiments import DataSplits
from prunegym.experiments.models import build_model


class KnownEvaluator:
    """Proxy accuracy = ``base - sum_i weights[i] * s_i**2`` (no data, no forward pass)."""

    def __init__(self, example_input, base=0.9):
        self.device = torch.device("cpu")
        self.example_input = example_input
        self.base = base
        self.weights: dict[str, float] = {}

    def calibration_inputs(self):
        return []

    def calibration_pair(self):
        return None

    def evaluate_model(self, model):
        return ProxyResult(self.base, 0.0, 1, "dense", 0.0)

    def evaluate(self, pruner, policy):
        acc = self.base - sum(self.weights[n] * s * s for n, s in policy.sparsities.items())
        return ProxyResult(acc, 0.0, 1, "masked", 0.0)


def _known_optimum_env():
    """ResNet-20 (12 units); about half the units are nearly free to prune (weight
    0.005), the others costly (0.3). The budget is exactly the MACs of "free units at
    max_sparsity, costly units dense", which is therefore the best policy."""
    torch.manual_seed(0)
    model = build_model("resnet20", 1, 10).eval()
    ev = KnownEvaluator(torch.randn(2, 1, 16, 16))
    probe = PruningEnv(model, evaluator=ev, ratio=0.99, round_to=1, reward="amc")
    names = probe.table.names
    free = np.random.default_rng(0).random(len(names)) < 0.5
    ev.weights = {n: (0.005 if f else 0.3) for n, f in zip(names, free, strict=True)}
    best = np.where(free, probe.max_sparsity, 0.0)
    macs = probe.table.cost_of_kept(probe.table.kept_counts(best, 1)).macs
    ratio = macs / probe.table.total.macs + 1e-9
    env = PruningEnv(model, evaluator=ev, ratio=ratio, round_to=1, reward="amc")
    optimum, _ = env.play(best)
    return env, optimum


def test_ddpg_with_amc_settings_beats_random_search_on_the_real_env():
    """160 episodes each, seed 0: DDPG (AMC defaults, 40 warm-up episodes) ends at most
    half as far from the optimum reward as random search (measured: 1.13 vs 3.27)."""
    env, optimum = _known_optimum_env()
    gaps = {}
    for name in ("random", "ddpg"):
        opts = {"warmup_episodes": 40} if name == "ddpg" else {}
        result = make_searcher(name, env, seed=0, **opts).search(env, 160, progress=False)
        assert result.best_reward <= optimum + 1e-6  # nothing beats the known optimum
        gaps[name] = optimum - result.best_reward
    assert gaps["ddpg"] < 0.5 * gaps["random"], gaps


def _tiny_env(**kwargs) -> PruningEnv:
    """smallcnn on 16 random 8x8 images: a real env (evaluator, wall, pruner) in ms."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    data = DataSplits.from_tensors((x, y), reward_val_size=16)
    model = make_model("smallcnn", in_channels=1)
    return PruningEnv(model, data, ratio=0.4, evaluator_options={"mode": "masked"}, **kwargs)


FAST = {"ddpg": {"warmup_episodes": 2}, "td3": {"warmup_episodes": 2},
        "sac": {"warmup_episodes": 2}, "ppo": {"rollout_episodes": 2}}  # fmt: skip


@pytest.mark.parametrize("name", SEARCHERS)
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
