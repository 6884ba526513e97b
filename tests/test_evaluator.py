"""The evaluator: reward split only, adaptive BN, cache, masked == physical, loud NaNs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_model
from torch import nn
from torch.utils.data import Dataset

from prunegym.envs import (
    EvaluationError,
    Evaluator,
    NonFiniteOutputError,
    PruningEnv,
    canonical_device,
    recalibrate_batchnorm,
    score_batches,
)
from prunegym.experiments.data import build_data
from prunegym.pruners import ChannelPruner, LayerTable, PruningPolicy


@pytest.fixture(scope="module")
def digits() -> Any:
    return build_data("digits", seed=0)


class Recorder(Dataset):
    """A split that records the global pool index of every sample read from it."""

    def __init__(self, split: Any) -> None:
        self.split = split
        self.touched: set[int] = set()

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> Any:
        self.touched.add(int(self.split.indices[i]))
        return self.split[i]


def test_the_evaluator_never_reads_a_test_index(digits: Any) -> None:
    splits = {name: Recorder(digits.plain(name)) for name in ("train", "reward_val", "test")}
    data = SimpleNamespace(**splits)  # a data object whose test split is readable on purpose
    model = make_model("smallcnn", in_channels=1)
    for options in ({"mode": "auto", "probe": 1}, {"mode": "masked", "preload": False}):
        env = PruningEnv(model, data, ratio=0.5, evaluator_options=options,
                         importance="taylor")  # taylor reads calibration labels too  # fmt: skip
        for seed in range(2):
            env.play(list(np.linspace(0.0, 0.8, env.n_units)[::-1]), seed=seed)
    assert splits["test"].touched == set()
    test = set(digits.indices["test"].tolist())
    assert splits["reward_val"].touched == set(digits.indices["reward_val"].tolist())
    assert splits["reward_val"].touched.isdisjoint(test)
    assert splits["train"].touched and splits["train"].touched <= set(digits.indices["train"])
    assert splits["train"].touched.isdisjoint(test)


def test_the_held_out_slice_is_disjoint_from_the_search_slice_and_never_the_test_split(
    digits: Any,
) -> None:
    from prunegym.agents import make_searcher

    splits = {name: Recorder(digits.plain(name)) for name in ("train", "reward_val", "test")}
    data = SimpleNamespace(**splits)
    reward_val = digits.indices["reward_val"]
    options = {"mode": "masked", "preload": False, "subset_size": 60, "heldout_size": 40}
    env = PruningEnv(make_model("smallcnn", in_channels=1), data, ratio=0.5,
                     evaluator_options=options)  # fmt: skip
    ev = env.evaluator
    search, held = set(ev.subset_indices.tolist()), set(ev.heldout_indices.tolist())
    assert len(search) == 60 and len(held) == 40 and not search & held
    assert search | held <= set(range(len(reward_val)))
    splits["reward_val"].touched.clear()
    make_searcher("random", env, seed=0, select_top=0).search(env, 4, progress=False)
    search_rows = set(reward_val[sorted(search)].tolist())
    assert splits["reward_val"].touched == search_rows  # the episodes read the search slice
    splits["reward_val"].touched.clear()
    env.score_heldout(env.pruner.policy([0.1] * env.n_units))
    assert splits["reward_val"].touched == set(reward_val[sorted(held)].tolist())  # ... this
    result = make_searcher("random", env, seed=1, select_top=3).search(env, 4, progress=False)
    assert len(result.selection) == 3 and all(r.heldout for r in result.selection)
    assert splits["test"].touched == set()
    assert not set(digits.indices["test"].tolist()) & set(reward_val.tolist())
    assert ev.stats["heldout_evaluations"] >= 3


def _trained_smallcnn(digits: Any, epochs: int = 3) -> nn.Module:
    x, y = digits.tensors("train")
    torch.manual_seed(0)
    model = make_model("smallcnn", in_channels=1).train()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(y), 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def test_adaptive_bn_raises_the_proxy_accuracy_of_a_half_pruned_candidate(digits: Any) -> None:
    model = _trained_smallcnn(digits)
    table = LayerTable.from_model(model, digits.example_input)
    pruner = ChannelPruner(model, table, importance="l1")
    policy = PruningPolicy.uniform(table, 0.5)
    scores = {}
    for bn in (False, True):
        ev = Evaluator(digits.reward_val, digits.plain("train"), bn_recalibration=bn, seed=0)
        assert ev.evaluate_model(model).accuracy > 0.9  # the network is really trained
        scores[bn] = ev.evaluate(pruner, policy).accuracy
    # measured with this seed: about 0.16 without recalibration, 0.58 with it
    assert scores[True] - scores[False] >= 0.2, scores


def test_masked_and_physical_routes_agree_and_restore_the_model() -> None:
    model = make_model("resnet20", in_channels=1)
    gen = torch.Generator().manual_seed(0)
    val = (torch.randn(48, 1, 8, 8, generator=gen), torch.randint(0, 10, (48,), generator=gen))
    calib = torch.randn(32, 1, 8, 8, generator=gen)
    table = LayerTable.from_model(model, val[0][:1])
    pruner = ChannelPruner(model, table)
    policy = PruningPolicy.uniform(table, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    results = {}
    for mode in ("masked", "physical"):
        ev = Evaluator(val, calib, mode=mode, bn_batch_size=16, bn_batches=2, cache=False)
        results[mode] = ev.evaluate(pruner, policy)
        assert results[mode].mode == mode and ev.stats[mode] == 1
    assert results["masked"].accuracy == results["physical"].accuracy
    assert results["masked"].loss == pytest.approx(results["physical"].loss, rel=1e-4)
    after = model.state_dict()  # BN running stats and masked weights are back, bit for bit
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_auto_mode_probes_both_routes_then_keeps_one() -> None:
    model = make_model("smallcnn", in_channels=1)
    val = (torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    table = LayerTable.from_model(model, val[0][:1])
    pruner = ChannelPruner(model, table)
    ev = Evaluator(val, mode="auto", probe=1)
    assert ev.chosen_mode is None
    ev.evaluate(pruner, PruningPolicy.uniform(table, 0.5))
    assert ev.chosen_mode in ("masked", "physical")
    assert ev.stats["masked"] == ev.stats["physical"] == 1
    ev.evaluate(pruner, PruningPolicy.uniform(table, 0.25))
    assert ev.stats[ev.chosen_mode] == 2 and ev.stats["probe_accuracy_diff"] == 0.0


def test_cache_is_keyed_by_the_rounded_kept_counts() -> None:
    model = make_model("smallcnn", in_channels=1)
    val = (torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    table = LayerTable.from_model(model, val[0][:1])
    pruner = ChannelPruner(model, table)
    ev = Evaluator(val, mode="masked")
    first = ev.evaluate(pruner, PruningPolicy.uniform(table, 0.5))
    same_counts = ev.evaluate(pruner, PruningPolicy.uniform(table, 0.52))  # rounds to the same
    assert same_counts.cached and same_counts.accuracy == first.accuracy
    assert ev.stats == {**ev.stats, "evaluations": 1, "cache_hits": 1}
    assert not ev.evaluate(pruner, PruningPolicy.uniform(table, 0.3)).cached
    off = Evaluator(val, mode="masked", cache=False)
    off.evaluate(pruner, PruningPolicy.uniform(table, 0.5))
    assert not off.evaluate(pruner, PruningPolicy.uniform(table, 0.5)).cached
    assert off.stats["evaluations"] == 2


def test_fixed_subset_is_seeded_and_sized(digits: Any) -> None:
    a = Evaluator(digits.reward_val, subset_size=50, seed=1)
    b = Evaluator(digits.reward_val, subset_size=50, seed=1)
    c = Evaluator(digits.reward_val, subset_size=50, seed=2)
    assert a.samples == 50 and np.array_equal(a.subset_indices, b.subset_indices)
    assert not np.array_equal(a.subset_indices, c.subset_indices)
    everything = Evaluator(digits.reward_val, subset_size=10**6)  # all but the held-out fifth
    n = len(digits.reward_val)
    assert (everything.samples, everything.heldout_samples) == (n - n // 5, n // 5)
    assert Evaluator(digits.reward_val, heldout_size=0).samples == n
    x_pre = torch.cat([x for x, _ in a.batches()])
    lazy = Evaluator(digits.reward_val, subset_size=50, seed=1, preload=False, batch_size=7)
    assert torch.equal(x_pre, torch.cat([x for x, _ in lazy.batches()]))
    held = torch.cat([x for x, _ in a.batches("heldout")])
    assert torch.equal(held, torch.cat([x for x, _ in lazy.batches("heldout")]))


class Counting(Dataset):
    """A dataset that counts the samples read from it."""

    def __init__(self, data: Any) -> None:
        self.data, self.reads = data, 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Any:
        self.reads += 1
        return self.data[i]


def test_a_reward_split_above_the_memory_cap_streams_with_the_same_results(digits: Any) -> None:
    model = _trained_smallcnn(digits, epochs=1)
    table = LayerTable.from_model(model, digits.example_input)
    pruner = ChannelPruner(model, table)
    options = {"subset_size": 90, "heldout_size": 30, "batch_size": 16, "mode": "masked",
               "cache": False, "seed": 2}  # fmt: skip
    held = Evaluator(digits.reward_val, digits.plain("train"), **options)
    assert held.preloaded == ("search", "heldout")  # the default cap holds both
    stream_data = Counting(digits.reward_val)
    streamed = Evaluator(stream_data, digits.plain("train"), preload_max_mb=0, **options)
    assert streamed.preloaded == ()
    assert stream_data.reads <= 2  # one sample per slice to measure it, nothing held
    policies = [PruningPolicy.uniform(table, s) for s in (0.0, 0.3, 0.6)]
    for policy in policies:
        for split in ("search", "heldout"):
            before = stream_data.reads
            a, b = held.evaluate(pruner, policy, split), streamed.evaluate(pruner, policy, split)
            assert (a.accuracy, a.loss, a.samples) == (b.accuracy, b.loss, b.samples)
            assert stream_data.reads - before == a.samples  # read again from the dataset
    dense_a, dense_b = held.evaluate_model(model), streamed.evaluate_model(model)
    assert (dense_a.accuracy, dense_a.loss) == (dense_b.accuracy, dense_b.loss)
    # a cap the search slice fits in and the held-out slice does not (1x28x28 float32)
    one = digits.reward_val[0][0]
    search_mb = 90 * (torch.as_tensor(one).numel() * 4 + 8) / 2**20
    part = Evaluator(digits.reward_val, preload_max_mb=search_mb, **options)
    assert part.preloaded == ("search",)
    with pytest.raises(ValueError, match="preload_max_mb"):
        Evaluator(digits.reward_val, preload_max_mb=-1)


def test_recalibration_averages_the_calibration_batches() -> None:
    bn = nn.BatchNorm1d(3, momentum=0.1)
    model = nn.Sequential(nn.Identity(), bn).eval()
    batches = [torch.randn(8, 3) + 2.0, torch.randn(8, 3) - 1.0]
    recalibrate_batchnorm(model, batches)
    expected = torch.stack([b.mean(0) for b in batches]).mean(0)
    assert torch.allclose(bn.running_mean, expected, atol=1e-6)
    assert bn.momentum == 0.1 and not bn.training


def test_errors() -> None:
    val = (torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    with pytest.raises(ValueError, match="calibration"):
        Evaluator(val, bn_recalibration=True)
    with pytest.raises(ValueError, match="mode"):
        Evaluator(val, mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="subset_size"):
        Evaluator(val, subset_size=0)
    with pytest.raises(ValueError, match="reward_val"):
        Evaluator(42)
    model = make_model("smallcnn", in_channels=1)
    with torch.no_grad():
        model.classifier.bias[3] = float("nan")
    ev = Evaluator(val)
    with pytest.raises(EvaluationError, match="NaN"):
        ev.evaluate_model(model)
    table = LayerTable.from_model(model, val[0][:1])
    policy = PruningPolicy.uniform(table, 0.5)
    with pytest.raises(EvaluationError, match="NaN") as caught:
        ev.evaluate(ChannelPruner(model, table), policy)
    assert caught.value.policy == policy


def test_cuda_and_cuda0_name_the_same_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert canonical_device("cuda") == canonical_device("cuda:0") == torch.device("cuda", 0)
    assert canonical_device("cuda") != canonical_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert canonical_device("cuda") == torch.device("cuda:1")
    assert canonical_device(torch.device("cpu", 0)) == canonical_device("cpu")


def test_env_accepts_an_evaluator_on_the_same_device_spelled_differently() -> None:
    val = (torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    ev = Evaluator(val, mode="masked", device="cpu")
    env = PruningEnv(make_model("smallcnn", in_channels=1), evaluator=ev, device="cpu:0")
    assert env.evaluator is ev and env.device == ev.device == torch.device("cpu")


def test_search_proxy_and_training_evaluate_score_alike() -> None:
    """One loop: the evaluator's proxy and ``training.evaluate`` agree on the same data."""
    from prunegym.experiments.training import evaluate

    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 1, 8, 8, generator=gen), torch.randint(0, 10, (40,), generator=gen)
    model = make_model("smallcnn", in_channels=1).train()
    proxy = Evaluator((x, y), batch_size=16, heldout_size=0).evaluate_model(model)
    batches = list(zip(torch.split(x, 16), torch.split(y, 16), strict=True))
    full = evaluate(model, batches)
    assert model.training  # the mode is restored
    assert proxy.accuracy == full.top1 and proxy.loss == pytest.approx(full.loss, rel=1e-6)
    with torch.no_grad():
        logits = model.eval()(x)
    top5 = (logits.topk(5, 1).indices == y[:, None]).any(1).float().mean().item()
    assert full.top5 == pytest.approx(top5) and full.samples == proxy.samples == 40
    assert full.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert evaluate(model, batches, max_batches=1).samples == 16
    with pytest.raises(NonFiniteOutputError, match="inf"):
        score_batches(nn.Sequential(nn.Flatten(), _Inf()), batches, check_finite=True)


class _Inf(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 10), float("inf"))
