"""benchmarks/bench_proxy.py (the proxy ranking study) on a tiny setting, and the small
VGG a user brings (benchmarks/models/small_vgg.py, configs/small-vgg-fmnist.yaml).

Not the real measurement: digits, a few candidates, a fine-tune of a hundred samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_scripts import load_benchmark

from prunegym.envs import make_pruning_env
from prunegym.experiments.config import load_config
from prunegym.experiments.data import DataSplits, find_fashion_mnist
from prunegym.experiments.models import build_model
from prunegym.pruners import count_cost

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "configs" / "digits.yaml"
VGG = "benchmarks.models.small_vgg:small_vgg"
TINY = ["--candidates", "5", "--finetune-samples", "100", "--threads", "1", "--no-progress",
        "--set", "workload.train_epochs=2", "--set", "env.ratio=0.3",
        "--set", "env.evaluator.subset_size=40"]  # fmt: skip


def _tiny_env(ratio: float = 0.3):
    torch.manual_seed(0)
    x, y = torch.randn(120, 1, 8, 8), torch.arange(120) % 10
    data = DataSplits.from_tensors((x, y), reward_val_size=40)
    return make_pruning_env(build_model("smallcnn", in_channels=1), data, ratio=ratio,
                            reconstruction=False)  # fmt: skip


def test_the_study_ranks_every_configuration_on_samples_the_proxy_never_reads(tmp_path, capsys):
    out = tmp_path / "proxy"
    bench = load_benchmark("bench_proxy")
    assert bench.main(["--config", str(DIGITS), *TINY, "--out", str(out)]) == 0
    result = json.loads((out / "digits.json").read_text())
    search, truth = np.array(result["slices"]["search"]), np.array(result["slices"]["truth"])
    assert len(search) == 40 and len(truth) > 0
    assert not np.intersect1d(search, truth).size  # the ground truth is held out
    assert result["settings"]["truth_samples"] == len(truth)
    assert "SHORTENED" in result["settings"]["fine_tune"]
    names = ["none", "bn", "recon", "both", "before fine-tune"]
    assert list(result["statistics"]) == names
    for name in names:
        stat = result["statistics"][name]
        assert -1.0 <= stat["tau"] <= 1.0 and -1.0 <= stat["rho"] <= 1.0, (name, stat)
    rows = result["candidates"]
    assert len(rows) == 5 and rows[0]["profile"] == "uniform"
    assert len({tuple(r["kept"]) for r in rows}) == 5  # every candidate a different network
    for r in rows:
        assert r["macs_ratio"] <= 0.3 and set(r["proxy"]) == set(names[:4])
        assert 0.0 <= r["truth"]["fine_tuned"] <= 1.0
    table = (out / "digits.md").read_text()
    assert table in capsys.readouterr().out
    for name in names:
        assert f"| {name} |" in table


def test_candidates_are_seeded_distinct_and_fill_the_budget():
    bench = load_benchmark("bench_proxy")
    env = _tiny_env()
    game = env.unwrapped
    drawn = bench.draw_candidates(env, 5, seed=3)
    again = bench.draw_candidates(env, 5, seed=3)
    assert [p for p, _ in drawn] == ["uniform", *bench.PROFILES[:4]]
    for (_, a), (_, b) in zip(drawn, again, strict=True):
        np.testing.assert_array_equal(a, b)
    kept = {tuple(game.wall.kept(s)) for _, s in drawn}
    assert len(kept) == 5
    assert all(game.within_budget(s) for _, s in drawn)
    with pytest.raises(ValueError, match="distinct candidates"):
        bench.draw_candidates(env, 10_000, seed=0)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--candidates", "2"], "--candidates must be >= 3"),
        (["--finetune-samples", "0"], "--finetune-samples must be >= 1"),
        (["--set", "env.ratio=abc"], "env.ratio must be a number"),
        (["--set", "env.evaluator.subset_size=null", "--set", "env.evaluator.heldout_size=0"],
         "the search slice is the whole reward split"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(tmp_path, capsys, argv, fragment):
    out = tmp_path / "proxy"
    base = ["--config", str(DIGITS), "--no-progress", "--set", "workload.train_epochs=1"]
    assert load_benchmark("bench_proxy").main([*base, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench_proxy: error: ") and fragment in err[0]
    assert not out.exists()


def test_the_small_vgg_is_user_code_of_the_size_the_study_needs(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    model = build_model(VGG, num_classes=10, in_channels=3)
    x = torch.randn(2, 3, 32, 32)
    assert model.eval()(x).shape == (2, 10)
    assert 10e6 <= count_cost(model, x[:1]).macs <= 20e6
    cfg = load_config(ROOT / "configs" / "small-vgg-fmnist.yaml")
    assert cfg.workload.model == VGG
    assert cfg.workload.dataset_options == {"image_size": 32, "channels": 3}
    y = torch.arange(64) % 10
    data = DataSplits.from_tensors((torch.randn(64, 3, 32, 32), y), reward_val_size=16)
    env = make_pruning_env(model, data, ratio=cfg.env.ratio, round_to=cfg.env.round_to)
    assert env.unwrapped.n_units == 8  # every conv is a decision of its own (a plain net)


def _has_fashion_mnist() -> bool:
    try:
        find_fashion_mnist()
    except (FileNotFoundError, OSError):
        return False
    return True


@pytest.mark.skipif(not _has_fashion_mnist(), reason="Fashion-MNIST is not installed")
def test_the_small_vgg_config_prepares_from_a_plain_state_dict(tmp_path, monkeypatch):
    from prunegym.experiments.workload import prepare_workload

    monkeypatch.syspath_prepend(str(ROOT))
    weights = tmp_path / "weights.pt"
    torch.save(build_model(VGG).state_dict(), weights)
    cfg = load_config(ROOT / "configs" / "small-vgg-fmnist.yaml",
                      [f"workload.checkpoint={weights}", "search.agent=random"])  # fmt: skip
    workload = prepare_workload(cfg)
    try:
        assert workload.data.example_input.shape == (1, 3, 32, 32)
        assert workload.env.unwrapped.settings["reconstruction"] is True
    finally:
        workload.env.close()
