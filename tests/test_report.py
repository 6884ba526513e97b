"""The before/after table and report: a slower model says "slower", and latency timed
under load is flagged (alternating rounds whose medians disagree)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from prunegym.experiments import timing
from prunegym.experiments.report import render_report, summary_table
from prunegym.experiments.timing import compare_latency, speed_change

LAT = {"median_ms": 1.0, "spread": 0.05, "noisy": False, "round_medians_ms": [1.0, 1.0, 1.0]}
METRICS = {
    "model": {"name": "smallcnn"},
    "dataset": "digits",
    "test_samples": 360,
    "budget": {"target": "macs", "ratio": 0.5},
    "dense": {"top1": 0.99, "top5": 1.0, "macs": 3e6, "params": 1.3e5, "file_bytes": 500_000,
              "latency_ms": {"1": {**LAT, "median_ms": 0.30}, "64": {**LAT, "median_ms": 3.0}}},
    "pruned": {"top1": 0.98, "top5": 1.0, "macs": 1.2e6, "params": 5e4, "file_bytes": 200_000,
               "top1_before_fine_tune": 0.9, "top5_before_fine_tune": 0.99,
               "latency_ms": {"1": {**LAT, "median_ms": 0.345}, "64": {**LAT, "median_ms": 2.0}}},
    "policy": {"granularity": "channel", "importance": "l1", "round_to": 8, "units": []},
    "search": {"agent": "ddpg", "episodes": 4, "seconds": 1.0, "seconds_per_episode": 0.25,
               "best_reward": -1.0, "best_episode": 2},
    "fine_tune": {"epochs": 1, "distill": False, "seconds": 1.0, "device": "cpu"},
    "options": {"latency_repeats": 30},
    "onnx": {"skipped": "onnxruntime is not installed (pip install 'prunegym[onnx]')"},
    "reproduce": "prunegym export run",
    "latency_device": "cpu",
    "latency_threads": 1,
}  # fmt: skip


def test_speed_change_says_slower_for_a_slower_model() -> None:
    assert speed_change(3.0, 2.0) == "1.50x faster"
    assert speed_change(0.30, 0.345) == "1.15x slower"
    assert speed_change(1.0, 1.001) == "same speed"


def test_the_table_says_slower_and_flags_noisy_latency() -> None:
    table = summary_table(METRICS)
    assert "1.15x slower" in table and "faster" in table.splitlines()[-2]
    assert "0.87x" not in table and "noisy" not in table and "busy" not in table
    noisy = copy.deepcopy(METRICS)
    noisy["pruned"]["latency_ms"]["64"].update(spread=0.6, noisy=True)
    table = summary_table(noisy)
    assert "latency, batch 64 (ms) (noisy)" in table
    assert table.splitlines()[-1].startswith("warning: latency rounds differ by up to 60%")
    report = render_report(noisy, has_history=False)
    assert "| latency, batch 1 (ms) | 0.300 | 0.345 | 1.15x slower |" in report
    assert "Warning: latency rounds differ by up to 60%" in report
    assert "ONNX export skipped: onnxruntime is not installed" in report


def test_compare_latency_alternates_rounds_and_flags_a_large_spread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    medians = {"dense": iter([1.0, 1.0, 1.0]), "pruned": iter([0.5, 1.0, 0.5])}

    def fake_measure(model: nn.Module, x: torch.Tensor, threads: object = None,
                     warmup: int = 0, repeats: int = 1) -> SimpleNamespace:  # fmt: skip
        calls.append(model.tag)
        m = next(medians[model.tag])
        return SimpleNamespace(median_ms=m, p10_ms=m, p90_ms=m, repeats=repeats,
                               batch_size=len(x), threads=1, device="cpu")  # fmt: skip

    monkeypatch.setattr("prunegym.pruners.measure_latency", fake_measure)
    dense, pruned = nn.Identity(), nn.Identity()
    dense.tag, pruned.tag = "dense", "pruned"
    d, p = compare_latency(dense, pruned, torch.zeros(1, 3), [1], repeats=2, rounds=3)
    assert calls == ["dense", "pruned"] * 3  # alternating, so load hits both alike
    assert d["1"]["median_ms"] == 1.0 and not d["1"]["noisy"] and d["1"]["repeats"] == 6
    assert p["1"]["median_ms"] == 0.5 and p["1"]["spread"] == pytest.approx(1.0)
    assert p["1"]["noisy"] and p["1"]["spread"] > timing.NOISY_SPREAD
