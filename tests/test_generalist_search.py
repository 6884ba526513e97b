"""``search.workloads``: one agent trained on several workloads in turn from a config; each
workload ends as an ordinary run directory (export works), the top directory holds the
generalist (transfer works), an interrupted run resumes the cycle exactly, bad setups are
one line and exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from prunegym.agents import SearchCallback
from prunegym.experiments.cli import main
from prunegym.experiments.config import ConfigError, load_config
from prunegym.experiments.export import ExportOptions, export_run
from prunegym.experiments.search import run_search

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = ["run.progress=false", "run.tensorboard=false", "run.threads=1", "run.checkpoint_every=1",
         "workload.train_epochs=1", "search.options.warmup_episodes=2",
         "env.evaluator.subset_size=64"]  # fmt: skip
WORKLOADS = [
    {"name": "cnn-050"},
    {"name": "vgg-040", "workload": {"model": "vgg11"}, "env": {"ratio": 0.4}},
]


def _config(tmp_path: Path, episodes: int = 5, workloads=None, agent: str = "ddpg",
            extra: tuple[str, ...] = ()) -> Path:  # fmt: skip
    data = load_config(CONFIGS / "digits.yaml", [*QUIET, *extra]).to_dict()
    data["search"].update(agent=agent, episodes=episodes,
                          workloads=WORKLOADS if workloads is None else workloads)  # fmt: skip
    path = tmp_path / "generalist.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return [{k: v for k, v in r.items() if k not in ("seconds", "cache_hit")}
                for r in csv.DictReader(fh)]  # fmt: skip


@pytest.fixture(scope="module")
def generalist(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("gen")
    out = tmp / "run"
    config = _config(tmp, extra=("run.tensorboard=true",))
    assert main(["search", "--config", str(config), "--out", str(out)]) == 0
    return out


def test_each_workload_is_an_ordinary_run_and_the_cycle_alternates(generalist):
    top = _rows(generalist / "history.csv")
    assert [r["workload"] for r in top] == ["cnn-050", "vgg-040"] * 2 + ["cnn-050"]
    assert [r["workload_episode"] for r in top] == ["0", "0", "1", "1", "2"]
    for name, ratio, episodes in (("cnn-050", 0.5, 3), ("vgg-040", 0.4, 2)):
        sub = generalist / "workloads" / name
        rows = _rows(sub / "history.csv")
        assert [r["episode"] for r in rows] == [str(i) for i in range(episodes)]
        mine = [r for r in top if r["workload"] == name]
        assert [r["reward"] for r in rows] == [r["reward"] for r in mine]
        units = [k for k in rows[0] if k.startswith("sparsity/")]
        assert units and all(float(r["macs_ratio"]) <= ratio + 1e-9 for r in rows)
        best = json.loads((sub / "best_policy.json").read_text())
        assert set(best["sparsities"]) == {u.split("/", 1)[1] for u in units}
        assert load_config(sub / "config.yaml").env.ratio == ratio
        assert any((sub / "tb").iterdir())  # its own TensorBoard log, with its own units
    meta = json.loads((generalist / "agent.json").read_text())
    assert [s["model"] for s in meta["sources"]] == ["smallcnn", "vgg11"]
    assert meta["target_ratios"] == [0.5, 0.4]
    summary = json.loads((generalist / "summary.json").read_text())
    assert [w["episodes"] for w in summary["workloads"]] == [3, 2]


def test_a_workload_exports_and_the_generalist_transfers(generalist, tmp_path, capsys):
    sub = generalist / "workloads" / "vgg-040"
    metrics = export_run(sub, ExportOptions(epochs=0, latency_repeats=1, progress=False))
    assert metrics["pruned"]["macs"] <= 0.4 * metrics["dense"]["macs"]
    code = main(["export", str(generalist)])
    err = capsys.readouterr().err
    assert code == 2 and "trained one agent on 2 workloads" in err
    assert len(err.strip().splitlines()) == 1
    out = tmp_path / "transfer"
    sets = [a for s in ["run.progress=false", "run.tensorboard=false", "env.ratio=0.3",
                        f"workload.checkpoint={generalist / 'workloads/cnn-050/base_model.pt'}"]
            for a in ("--set", s)]  # fmt: skip
    code = main(["transfer", "--from", str(generalist), "--config", str(CONFIGS / "digits.yaml"),
                 *sets, "--episodes", "0", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert float(_rows(out / "history.csv")[0]["macs_ratio"]) <= 0.3 + 1e-9


class _StopAfter(SearchCallback):
    def __init__(self, episodes: int) -> None:
        self.episodes = episodes

    def on_episode(self, searcher, record) -> None:
        if len(searcher.history) == self.episodes:
            searcher.request_stop()


def test_an_interrupted_generalist_resumes_the_cycle_exactly(generalist, tmp_path):
    cfg = load_config(_config(tmp_path, extra=("run.tensorboard=true",)))
    out = tmp_path / "cut"
    first = run_search(cfg, out, extra_callbacks=[_StopAfter(3)])
    assert first.status == "interrupted" and len(first.result.history) == 3
    resumed = run_search(cfg, out, resume=True)
    assert resumed.status == "completed"
    assert _rows(out / "history.csv") == _rows(generalist / "history.csv")
    for name in ("cnn-050", "vgg-040"):
        sub = Path("workloads") / name
        assert _rows(out / sub / "history.csv") == _rows(generalist / sub / "history.csv")


@pytest.mark.parametrize(
    ("workloads", "agent", "episodes", "message"),
    [
        ([{"name": "only"}], "ddpg", 5, "needs at least 2 entries"),
        (WORKLOADS, "random", 5, "search.agent must be ddpg, td3, sac, not 'random'"),
        (WORKLOADS, "ppo", 5, "not 'ppo'"),
        (WORKLOADS, "ddpg", 1, "must be at least the number of workloads (2)"),
        ([{"name": "a"}, {"model": "vgg11"}], "ddpg", 5, "unknown key search.workloads[1].model"),
        ([{"name": "a"}, {"name": "a"}], "ddpg", 5, "names must differ"),
        ([{"name": "a"}, {"env": {"round_to": 4}}], "ddpg", 5, "env.round_to is 4 in 1-smallcnn"),
    ],
)
def test_bad_workloads_are_one_line_exit_2_and_leave_nothing(
    tmp_path, capsys, workloads, agent, episodes, message
):
    out = tmp_path / "out"
    config = _config(tmp_path, episodes, workloads, agent)
    code = main(["search", "--config", str(config), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_other_commands_refuse_a_workloads_config(tmp_path):
    cfg = load_config(_config(tmp_path))
    from prunegym.experiments.workload import check_config

    with pytest.raises(ConfigError, match="only prunegym search runs it"):
        check_config(cfg)
