"""Bench statistics against hand-computed values: mean and std over seeds, paired
differences by seed, the seeded bootstrap interval, and how summary.md shows them."""

from __future__ import annotations

import math

import pytest

from prunegym.experiments.bench.config import BenchConfig
from prunegym.experiments.bench.stats import bootstrap_interval, paired_difference, spread
from prunegym.experiments.bench.summary import render_summary


def test_spread_is_the_mean_and_sample_std_of_the_numbers():
    s = spread([0.90, 0.92, None, 0.97, math.nan])
    assert s.n == 3
    assert s.mean == pytest.approx(0.93)
    # deviations -0.03, -0.01, +0.04: (9 + 1 + 16)e-4 / (3 - 1) = 13e-4
    assert s.std == pytest.approx(math.sqrt(13e-4))
    one = spread([0.5])
    assert (one.n, one.mean) == (1, 0.5) and math.isnan(one.std)
    assert spread([None]).n == 0 and math.isnan(spread([]).mean)


def test_paired_difference_pairs_by_seed():
    a = {0: 0.90, 1: 0.80, 2: 0.85, 5: 0.99}
    b = {0: 0.80, 1: 0.82, 2: 0.80, 3: 0.10, 5: None}
    d = paired_difference(a, b, samples=2000, seed=0)
    assert d.seeds == (0, 1, 2) and d.n == 3  # seed 3 and 5 have no pair
    assert d.mean == pytest.approx((0.10 - 0.02 + 0.05) / 3)
    assert d.low <= d.mean <= d.high
    assert d.low >= -0.02 and d.high <= 0.10  # a mean of resampled diffs stays in range
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_bootstrap_interval_by_hand_and_reproducible():
    # two diffs 0 and 1: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5th and 97.5th percentiles are 0 and 1
    assert bootstrap_interval([0.0, 1.0], samples=20000, seed=3) == (0.0, 1.0)
    # one diff: every resample is that diff
    assert bootstrap_interval([0.25], samples=50, seed=0) == (0.25, 0.25)
    diffs = [0.03, -0.01, 0.05, 0.02]
    first = bootstrap_interval(diffs, samples=1000, seed=7)
    assert bootstrap_interval(diffs, samples=1000, seed=7) == first
    assert bootstrap_interval(diffs, samples=1000, seed=8) != first
    assert first[0] <= sum(diffs) / 4 <= first[1]
    # the 95% interval of a narrower level is inside it
    inner = bootstrap_interval(diffs, samples=1000, seed=7, level=0.5)
    assert first[0] <= inner[0] <= inner[1] <= first[1]


def _row(searcher, seed, after, importance="l1", **extra):
    return {
        "cell": f"w/macs0.5-{importance}/{searcher}-s{seed}", "workload": "w",
        "target": "macs", "ratio": 0.5, "importance": importance, "searcher": searcher,
        "seed": seed, "episodes": 10, "evaluated": 10, "cache_hits": None,
        "proxy_accuracy": after - 0.1, "heldout_proxy_accuracy": None,
        "achieved_ratio": 0.5, "dense_test_top1": 0.99,
        "test_top1_before_finetune": after - 0.2, "test_top1_after_finetune": after,
        "wall_seconds": 2.0, **extra,
    }  # fmt: skip


def test_summary_tables_hand_computed():
    rows = [_row("random", 0, 0.90), _row("random", 1, 0.92),
            _row("ddpg", 0, 0.93), _row("ddpg", 1, 0.97), _row("ddpg", 2, 0.99)]  # fmt: skip
    text = render_summary(rows, BenchConfig(bootstrap_samples=4000), 6, "prunegym bench ...")
    assert "5 of 6 cells finished" in text and "`prunegym bench ...`" in text
    lines = text.splitlines()
    random_line = next(x for x in lines if x.startswith("| random | 2 |"))
    # mean 0.91, sample std of 0.90 and 0.92 = 0.01414
    assert "| 91.00 ± 1.41 |" in random_line
    ddpg_line = next(x for x in lines if x.startswith("| ddpg | 3 |"))
    assert "| 96.33 ± 3.06 |" in ddpg_line  # 0.93, 0.97, 0.99: std 0.030551
    # ddpg - random on seeds 0 and 1: 0.03 and 0.05 -> +4.00 pp; resampled means are
    # 0.03, 0.04, 0.05, so the 95% interval is [+3.00, +5.00]
    paired = next(x for x in lines if x.startswith("| ddpg | random |"))
    assert paired == "| ddpg | random | 2 | +4.00 [+3.00, +5.00] | +4.00 [+3.00, +5.00] |"
    assert "| random | ddpg |" not in text and "uniform" not in text.split("## w")[1]


def test_summary_compares_importance_criteria_with_the_random_criterion():
    rows = [_row("uniform", s, a, imp) for imp, accs in
            (("l1", (0.95, 0.96)), ("random", (0.90, 0.93)), ("fpgm", (0.94, 0.94)))
            for s, a in enumerate(accs)]  # fmt: skip
    text = render_summary(rows, BenchConfig(), 6, "cmd")
    lines = text.splitlines()
    assert any(x.startswith("| uniform / fpgm | 2 |") for x in lines)
    l1 = next(x for x in lines if x.startswith("| uniform / l1 | uniform / random | 2 |"))
    assert "+4.00 [" in l1  # (0.05 + 0.03) / 2
    assert not any(x.startswith("| uniform / random | uniform / random") for x in lines)


def test_best_so_far_holds_the_best_after_a_searcher_stops():
    from prunegym.experiments.bench.plots import best_so_far

    history = [{"reward": "-3.0"}, {"reward": "-1.0"}, {"reward": "-2.0"}]
    assert best_so_far(history, 5).tolist() == [-3.0, -1.0, -1.0, -1.0, -1.0]
    assert best_so_far(history, 2).tolist() == [-3.0, -1.0]
    assert math.isnan(best_so_far([], 3)[0])
