"""Bench configs -> the cell matrix: the shipped configs expand to the intended cells,
each an ordinary search config with the bench's overrides (no model built)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunegym.experiments.bench.cells import expand
from prunegym.experiments.bench.config import load_bench_config
from prunegym.experiments.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ALL = ["ddpg", "td3", "sac", "ppo", "random", "uniform", "evolution", "cmaes"]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the shipped configs name workloads relative to the checkout


def test_quick_config_is_every_searcher_on_digits_with_three_seeds(tmp_path):
    cfg = load_bench_config("configs/bench-quick.yaml")
    cells = expand(cfg, tmp_path)
    assert len(cells) == len(ALL) * 3
    assert sorted({c.searcher for c in cells}) == sorted(ALL)
    assert {c.seed for c in cells} == {0, 1, 2}
    dense = str((tmp_path / "dense" / "digits" / "model.pt").resolve())
    for c in cells:
        s = c.config
        assert (s.seed, s.search.agent, s.env.ratio, s.env.target) == (c.seed, c.searcher, 0.5,
                                                                        "macs")  # fmt: skip
        assert s.search.episodes == cfg.episodes and s.run.progress is False
        assert s.workload.checkpoint == dense  # one dense model for every cell
        expected = {"warmup_episodes": 20} if c.searcher in ("ddpg", "td3", "sac") else {}
        assert s.search.options == expected
    assert len({c.run_dir(tmp_path) for c in cells}) == len(cells)
    # seeds before searchers: a cut bench has every searcher at the first seed
    assert [c.searcher for c in cells[: len(ALL)]] == ALL and {
        c.seed for c in cells[: len(ALL)]
    } == {0}


@pytest.fixture
def fake_checkpoint(tmp_path) -> dict:
    """ResNet-20's checkpoint is a training run away; expanding only checks it exists."""
    path = tmp_path / "model.pt"
    path.write_bytes(b"not read")
    return {"bench.overrides": {"workload.checkpoint": str(path)}}


def test_resnet20_config_is_three_ratios_of_every_searcher(tmp_path, fake_checkpoint):
    cfg = load_bench_config("configs/bench-resnet20-fmnist.yaml", fake_checkpoint)
    cells = expand(cfg, tmp_path / "out")
    assert len(cells) == 3 * len(ALL) * 3
    assert sorted({c.config.env.ratio for c in cells}) == [0.3, 0.5, 0.7]
    assert {c.config.search.episodes for c in cells} == {300}
    assert cfg.finetune_epochs == 5 and sorted(cfg.searchers) == sorted(ALL)
    assert not (tmp_path / "out").exists()  # expanding writes nothing


def test_resnet20_half_column_config_is_every_searcher_at_half_the_macs(tmp_path, fake_checkpoint):
    cfg = load_bench_config("configs/bench-resnet20-fmnist-050.yaml", fake_checkpoint)
    cells = expand(cfg, tmp_path / "out")
    assert len(cells) == len(ALL) * 3 and sorted(cfg.searchers) == sorted(ALL)
    assert {(c.config.env.ratio, c.config.search.episodes) for c in cells} == {(0.5, 100)}
    assert (cfg.finetune_epochs, cfg.finetune_samples) == (1, 10000)
    warm = {c.searcher: c.config.search.options.get("warmup_episodes") for c in cells}
    assert warm["ddpg"] == warm["td3"] == warm["sac"] == 30


def test_importance_config_is_an_importance_axis(tmp_path, fake_checkpoint):
    cfg = load_bench_config("configs/bench-importance.yaml", fake_checkpoint)
    cells = expand(cfg, tmp_path)
    criteria = ["l1", "l2", "bn_scale", "taylor", "fpgm", "random"]
    assert len(cells) == 6 * 3 and cfg.finetune_epochs == 5
    assert [c.config.env.importance for c in cells[::3]] == criteria
    assert {(c.searcher, c.config.env.ratio) for c in cells} == {("uniform", 0.5)}
    assert cells[0].key == "resnet20-fmnist/macs0.5-l1/uniform-s0"


def test_missing_resnet20_checkpoint_is_a_config_error(tmp_path):
    cfg = load_bench_config(
        "configs/bench-importance.yaml",
        {"bench.overrides": {"workload.checkpoint": str(tmp_path / "absent.pt")}},
    )
    with pytest.raises(ConfigError, match=r"absent\.pt does not exist"):
        expand(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_workload_ratio_outside_the_unit_interval_is_refused(tmp_path):
    cfg = load_bench_config("configs/bench-quick.yaml", {"bench.overrides": {"env.ratio": 2.0}})
    with pytest.raises(ConfigError, match=r"env.ratio must lie in \(0, 1\]"):
        expand(cfg, tmp_path)
