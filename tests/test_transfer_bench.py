"""The transfer configs load, and benchmarks/bench_transfer.py runs every method on a tiny
setting (digits, one seed, K = 1, 2) and prints its table (not the real measurement)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_scripts import load_benchmark

from prunegym.experiments.config import load_config
from prunegym.experiments.generalist import workload_configs
from prunegym.experiments.search import run_search
from prunegym.experiments.transfer_command import transfer_config

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["run.progress=false", "run.tensorboard=false", "run.threads=1"]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("transfer-*.yaml")),
                         ids=lambda p: p.stem)  # fmt: skip
def test_every_transfer_config_loads_and_becomes_a_transfer(path, tmp_path):
    cfg = load_config(path)
    assert cfg.env.ratio == 0.5 and cfg.env.target == "macs"
    if cfg.search.workloads:  # a generalist: every workload a config of its own
        subs = workload_configs(cfg)
        assert len(subs) == len(cfg.search.workloads) >= 2
        assert sum(sub.search.episodes for _, sub in subs) == cfg.search.episodes
        assert all((ROOT / sub.workload.checkpoint).is_file() for _, sub in subs)
    elif path.stem.startswith("transfer-source-"):
        assert cfg.search.agent == "ddpg" and cfg.workload.checkpoint
    else:
        run = transfer_config(path, tmp_path, "agent", 10, [])
        assert (run.search.agent, run.search.episodes) == ("transfer", 11)


def _source(tmp_path, episodes: int):
    """A tiny DDPG search on digits (its agent and dense model) and the bench's --source
    / --targets / --set arguments that point at it."""
    source = tmp_path / "source"
    sets = [*QUIET, "workload.train_epochs=1", f"search.episodes={episodes}",
            "search.options.warmup_episodes=1"]  # fmt: skip
    cfg = load_config(ROOT / "configs" / "digits.yaml", sets)
    run_search(cfg, source)
    return cfg, ["--source", str(source), "--targets", str(ROOT / "configs" / "digits.yaml"),
                 "--set", f"workload.checkpoint={source / 'base_model.pt'}"]  # fmt: skip


def test_the_benchmark_compares_every_method_on_a_tiny_setting(tmp_path, capsys, monkeypatch):
    _, args = _source(tmp_path, 3)
    out = tmp_path / "bench"
    argv = [*args, "--set", "env.ratio=0.4", "--seeds", "0", "--k", "1", "2", "--out", str(out)]
    assert load_benchmark("bench_transfer").main(argv) == 0
    printed = capsys.readouterr().out
    assert "| method | evaluations | proxy accuracy |" in printed
    for row in ("| zero-shot | 1 |", "| transfer+ft | 2 |", "| profile | 1 |", "| uniform | 1 |",
                "| random | 2 |", "| ddpg-scratch | 2 |"):  # fmt: skip
        assert row in printed
    results = json.loads((out / "results.json").read_text())["targets"]
    (target,) = results.values()
    assert [r["evaluations"] for r in target["random@2"]] == [2]
    assert [r["evaluations"] for r in target["uniform@1"]] == [1]
    zero = target["zero-shot@1"][0]["reward"]
    assert target["transfer+ft@2"][0]["best_so_far"][0] == zero  # episode 0 is the zero-shot
    for rows in target.values():
        assert rows[0]["macs_ratio"] <= 0.4

    # A second invocation reads every finished run back instead of searching again.
    import prunegym.experiments.search as search_module

    def no_search(*args, **kwargs):
        raise AssertionError("a finished run was searched again")

    monkeypatch.setattr(search_module, "run_search", no_search)
    assert load_benchmark("bench_transfer").main(argv) == 0
    assert json.loads((out / "results.json").read_text())["targets"] == results


def test_export_at_fine_tunes_the_single_evaluation_methods_and_the_named_k(tmp_path):
    _, args = _source(tmp_path, 2)
    out = tmp_path / "bench"
    argv = [*args, "--seeds", "0", "--k", "1", "2", "--export-epochs", "1",
            "--export-samples", "64", "--export-at", "2", "--out", str(out)]  # fmt: skip
    assert load_benchmark("bench_transfer").main(argv) == 0
    (target,) = json.loads((out / "results.json").read_text())["targets"].values()
    tested = {key for key, rows in target.items() if "test_accuracy" in rows[0]}
    assert tested == {"zero-shot@1", "profile@1", "uniform@1", "transfer+ft@2", "random@2",
                      "ddpg-scratch@2"}  # fmt: skip
    assert all(0.0 <= target[key][0]["test_accuracy"] <= 1.0 for key in tested)
    # Before the fine-tune too, as the export measured it; a read-back row that predates
    # that figure takes it from the export's metrics.json.
    run_dir = out / "digits" / "uniform-k1-seed0"
    metrics = json.loads((run_dir / "export" / "metrics.json").read_text())["pruned"]
    row = target["uniform@1"][0]
    assert row["test_accuracy_before_fine_tune"] == metrics["top1_before_fine_tune"]
    del row["test_accuracy_before_fine_tune"]
    assert load_benchmark("bench_transfer").with_test_before_fine_tune(row, run_dir)[
        "test_accuracy_before_fine_tune"] == metrics["top1_before_fine_tune"]  # fmt: skip


def test_a_generalist_run_adds_its_transfer_rows(tmp_path):
    cfg, args = _source(tmp_path, 2)
    generalist = tmp_path / "generalist"
    run_search(cfg.replace(**{"search.episodes": 2, "search.workloads": [
        {"name": "a"}, {"name": "b", "env": {"ratio": 0.3}}]}), generalist)  # fmt: skip
    out = tmp_path / "bench"
    argv = [*args, "--seeds", "0", "--k", "1", "2", "--generalist", str(generalist),
            "--out", str(out)]  # fmt: skip
    assert load_benchmark("bench_transfer").main(argv) == 0
    (target,) = json.loads((out / "results.json").read_text())["targets"].values()
    assert target["zero-shot (generalist)@1"][0]["evaluations"] == 1
    assert target["transfer+ft (generalist)@2"][0]["evaluations"] == 2
    transfer = json.loads((out / "digits" / "transfer+ft_generalist-k2-seed0" /
                           "transfer.json").read_text())  # fmt: skip
    assert Path(transfer["source"]).resolve() == generalist.resolve()
