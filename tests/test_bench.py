"""``prunegym bench`` end to end on a tiny matrix: every output file, a rerun that
evaluates nothing, a cut cell finished from its checkpoint, and bad configs that end
with one line and exit status 2 before anything is written."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from pathlib import Path

import pytest
import yaml

from prunegym.experiments import cli, search, workload
from prunegym.experiments.bench.stats import spread

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
WORKLOAD = {
    "seed": 0,
    "workload": {"model": "smallcnn", "dataset": "digits", "train_epochs": 1},
    "env": {"target": "macs", "ratio": 0.5, "importance": "l1"},
    "search": {"agent": "ddpg", "episodes": 50, "options": {"warmup_episodes": 5}},
    "run": {"checkpoint_every": 1},
}
BENCH = {
    "searchers": ["random", "uniform"],
    "seeds": [0, 1],
    "episodes": 2,
    "finetune_epochs": 1,
    "threads": 1,
    "latency_repeats": 1,
    "bootstrap_samples": 200,
}


def _write_bench(folder: Path, **changes) -> Path:
    work = folder / "tiny.yaml"
    work.write_text(yaml.safe_dump(WORKLOAD))
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump({"bench": {"workloads": [str(work)], **BENCH, **changes}}))
    return path


def _bench(monkeypatch, capsys, *argv):
    code = cli.main(["bench", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny bench: (bench file, out dir, stdout)."""
    folder = tmp_path_factory.mktemp("bench")
    config, out = _write_bench(folder), folder / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["bench", "--config", str(config), "--out", str(out)])
    assert code == 0
    return config, out, stdout.getvalue()


def test_bench_writes_every_file(finished):
    _, out, stdout = finished
    for name in ("bench.yaml", "results.jsonl", "summary.md", "pareto.png", "curves.png"):
        assert (out / name).is_file(), name
    for name in ("pareto.png", "curves.png"):
        assert (out / name).read_bytes().startswith(PNG)
    assert not [p for p in out.rglob(".*") if "tmp" in p.name]  # no temporary files left
    rows = _rows(out)
    assert [(r["searcher"], r["seed"]) for r in rows] == [
        ("random", 0), ("uniform", 0), ("random", 1), ("uniform", 1)]  # fmt: skip
    assert sum(line.startswith("[") for line in stdout.splitlines()) == 4  # a line per cell
    for r in rows:
        run_dir = out / r["run_dir"]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed"
        metrics = json.loads((run_dir / "export" / "metrics.json").read_text())
        assert metrics["fine_tune"]["epochs"] == 1
        assert r["test_top1_after_finetune"] == metrics["pruned"]["top1"]
        assert r["test_top1_before_finetune"] == metrics["pruned"]["top1_before_fine_tune"]
        assert r["evaluated"] == summary["episodes"] == (2 if r["searcher"] == "random" else 1)
        assert r["achieved_ratio"] <= 0.5 + 1e-6 and r["target"] == "macs"
        assert r["proxy_accuracy"] == pytest.approx(summary["best_metrics"]["accuracy"])
        with (run_dir / "history.csv").open() as fh:
            hits = sum(int(row["cache_hit"]) for row in csv.DictReader(fh))
        meta = json.loads((run_dir / "best_policy.json").read_text())["meta"]
        assert r["heldout_proxy_accuracy"] == meta["heldout_accuracy"]
        assert r["cache_hits"] == hits
        assert r["wall_seconds"] > 0 and r["episodes"] == 2 and r["finetune_epochs"] == 1
    # one dense model trained for the whole bench, pruned by every cell
    assert (out / "dense" / "tiny" / "model.pt").is_file()
    dense = {json.loads((out / r["run_dir"] / "export" / "metrics.json").read_text())["dense"]
             ["top1"] for r in rows}  # fmt: skip
    assert len(dense) == 1


def test_summary_is_computed_from_the_results(finished):
    _, out, _ = finished
    rows = _rows(out)
    text = (out / "summary.md").read_text()
    for searcher in ("random", "uniform"):
        s = spread(r["test_top1_after_finetune"] for r in rows if r["searcher"] == searcher)
        line = next(x for x in text.splitlines() if x.startswith(f"| {searcher} | 2 |"))
        assert f"{100 * s.mean:.2f} ± {100 * s.std:.2f}" in line
    by = {(r["searcher"], r["seed"]): r["test_top1_after_finetune"] for r in rows}
    diff = sum(by["uniform", s] - by["random", s] for s in (0, 1)) / 2
    paired = next(x for x in text.splitlines() if x.startswith("| uniform | random | 2 |"))
    assert f"{100 * diff:+.2f} [" in paired
    assert "| random | uniform |" not in text  # the mirror image is not repeated


def test_rerun_does_no_new_evaluation(finished, monkeypatch, capsys):
    config, out, _ = finished
    histories = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("history.csv")}
    results = (out / "results.jsonl").read_text()

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished bench searched or exported again")

    monkeypatch.setattr(search, "run_search", forbidden)
    monkeypatch.setattr("prunegym.experiments.export.export_run", forbidden)
    monkeypatch.setattr(workload, "build_workload", forbidden)
    start = time.perf_counter()
    code, stdout, err = _bench(monkeypatch, capsys, "--config", config, "--out", out)
    assert code == 0, err
    assert time.perf_counter() - start < 20
    assert stdout.count("finished earlier") == 4
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("history.csv")} == (
        histories
    )
    assert (out / "results.jsonl").read_text() == results


class _StopAfter:
    """Asks the searcher to stop (as Ctrl-C does) once ``n`` episodes are done."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_search_start(self, searcher):
        pass

    def on_episode(self, searcher, record):
        if len(searcher.history) >= self.n:
            searcher.request_stop()

    def on_safe_point(self, searcher):
        pass

    def on_search_end(self, searcher, result):
        pass


def test_a_cut_cell_is_finished_from_its_checkpoint(finished, tmp_path, monkeypatch, capsys):
    _, full_out, _ = finished
    config = _write_bench(tmp_path, searchers=["random"], seeds=[0])
    out = tmp_path / "out"
    real = search.run_search

    def cut(cfg, run_dir, **kwargs):
        return real(cfg, run_dir, **{**kwargs, "extra_callbacks": [_StopAfter(1)]})

    monkeypatch.setattr(search, "run_search", cut)
    code, stdout, _ = _bench(monkeypatch, capsys, "--config", config, "--out", out)
    assert code == 130 and "rerun the same command" in stdout
    run_dir = out / "cells" / "tiny" / "macs0.5-l1" / "random-s0"
    assert (run_dir / "checkpoint.zip").is_file() and not (out / "results.jsonl").exists()

    monkeypatch.setattr(search, "run_search", real)
    code, stdout, err = _bench(monkeypatch, capsys, "--config", config, "--out", out)
    assert code == 0, err
    assert "resumed" in stdout
    assert len(json.loads((run_dir / "run.json").read_text())["resumed"]) == 1
    # the same episodes as the uninterrupted cell of the finished bench
    assert _episodes(run_dir) == _episodes(full_out / "cells/tiny/macs0.5-l1/random-s0")
    assert len(_rows(out)) == 1


def _episodes(run_dir: Path) -> list[list[str]]:
    lines = (run_dir / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "seconds"]
    return [[line.split(",")[i] for i in keep] for line in lines]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"searchers": ["random", "dqn"]}, "unknown searcher 'dqn'"),
        ({"seeds": []}, "bench.seeds is empty"),
        ({"ratios": [0.0]}, "bench.ratios must lie in (0, 1]"),
        ({"ratios": [0.5, 1.5]}, "bench.ratios must lie in (0, 1]"),
        ({"workloads": ["/nonexistent/work.yaml"]}, "does not exist"),
        ({"episodez": 3}, "unknown config key bench.episodez"),
        ({"importances": ["l3"]}, "unknown importance 'l3'"),
        ({"targets": ["flops"]}, "unknown target 'flops'"),
        ({"options": {"random": {"population": 3}}}, "has no option 'population'"),
        ({"finetune_epochs": -1}, "bench.finetune_epochs must be >= 0"),
        ({"seeds": [0, 0]}, "lists a value twice"),
        ({"finetune_samples": 0}, "bench.finetune_samples must be >= 1"),
        ({"finetune_samples": "many"}, "bench.finetune_samples"),
        ({"finetune_samples": 10**6}, "exceeds the"),
        (
            {"overrides": {"run.schedule": [0.7, 0.5]}},
            "run.schedule is set, but prunegym bench runs one search at one budget; prune "
            "iteratively with prunegym run",
        ),
        ({"workers": 0}, "bench.workers must be >= 1"),
        ({"resources_per_cell": {"num_cpu": 1}}, "unknown resource 'num_cpu'"),
        ({"resources_per_cell": {"num_cpus": 0}}, "num_cpus must be > 0"),
        ({"resources_per_cell": {"num_gpus": -1}}, "num_gpus must be a number >= 0"),
    ],
)
def test_bad_configs_exit_2_before_any_work(tmp_path, monkeypatch, capsys, changes, message):
    config = _write_bench(tmp_path, **changes)
    out = tmp_path / "out"
    code, _, err = _bench(monkeypatch, capsys, "--config", config, "--out", out)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_bad_override_and_missing_checkpoint_exit_2(tmp_path, monkeypatch, capsys):
    config = _write_bench(tmp_path)
    out = tmp_path / "out"
    for argv in (["--set", "bench.seeds=[]"], ["--set", "bench.overrides={workload.checkpoint:"
                                                " /nonexistent/model.pt}"]):  # fmt: skip
        code, _, err = _bench(monkeypatch, capsys, "--config", config, "--out", out, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_a_bench_dir_made_with_another_config_is_refused(finished, monkeypatch, capsys):
    config, out, _ = finished
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code, _, err = _bench(monkeypatch, capsys, "--config", config, "--out", out,
                          "--set", "bench.episodes=3")  # fmt: skip
    assert code == 2 and "another config (search.episodes differs)" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_finetune_samples_subset_is_recorded_and_a_change_re_exports(tmp_path, monkeypatch,
                                                                       capsys):  # fmt: skip
    config = _write_bench(tmp_path, searchers=["random"], seeds=[0], finetune_samples=100)
    out = tmp_path / "out"
    code, stdout, err = _bench(monkeypatch, capsys, "--config", config, "--out", out)
    assert code == 0, err
    run_dir = out / "cells" / "tiny" / "macs0.5-l1" / "random-s0"
    metrics = json.loads((run_dir / "export" / "metrics.json").read_text())
    assert metrics["options"]["train_samples"] == metrics["fine_tune"]["train_samples"] == 100
    assert [r["finetune_samples"] for r in _rows(out)] == [100]
    assert "on 100 samples" in stdout
    assert "Fine-tune: 1 epoch on 100 training samples" in (out / "summary.md").read_text()

    def forbidden(*args, **kwargs):
        raise AssertionError("the search ran again")

    monkeypatch.setattr(search, "run_search", forbidden)
    # another subset size: the same search, exported again with the new fine-tune
    code, stdout, err = _bench(monkeypatch, capsys, "--config", config, "--out", out,
                               "--set", "bench.finetune_samples=200")  # fmt: skip
    assert code == 0, err
    assert "exported" in stdout
    assert [r["finetune_samples"] for r in _rows(out)] == [200]
    metrics = json.loads((run_dir / "export" / "metrics.json").read_text())
    assert metrics["options"]["train_samples"] == 200
    # unset again: the whole train split
    code, stdout, err = _bench(monkeypatch, capsys, "--config", config, "--out", out,
                               "--set", "bench.finetune_samples=null")  # fmt: skip
    assert code == 0 and "exported" in stdout, err
    whole = json.loads((run_dir / "export" / "metrics.json").read_text())["fine_tune"]
    assert whole["train_samples"] > 200 and _rows(out)[0]["finetune_samples"] == whole[
        "train_samples"]  # fmt: skip
    assert "on the whole train split" in (out / "summary.md").read_text()
    # and the same again: nothing to do
    monkeypatch.setattr("prunegym.experiments.export.export_run", forbidden)
    code, stdout, err = _bench(monkeypatch, capsys, "--config", config, "--out", out,
                               "--set", "bench.finetune_samples=null")  # fmt: skip
    assert code == 0 and "finished earlier" in stdout, err


#: Row fields that measure time (they differ between any two runs).
TIMES = ("wall_seconds", "search_seconds", "finetune_seconds")


def test_two_ray_workers_write_the_same_cells_and_results(finished, tmp_path, monkeypatch,
                                                           capsys):  # fmt: skip
    pytest.importorskip("ray")
    _, serial_out, _ = finished
    config = _write_bench(tmp_path, workers=2, resources_per_cell={"num_cpus": 1})
    out = tmp_path / "out"
    code, stdout, err = _bench(monkeypatch, capsys, "--config", config, "--out", out)
    assert code == 0, err
    assert sum(line.startswith("[") for line in stdout.splitlines()) == 4
    assert stdout.count("training the dense") == 1  # by the driver, once, before the tasks

    def untimed(rows):  # (each bench has its own workload file)
        return [{k: v for k, v in r.items() if k not in (*TIMES, "workload_config")}
                for r in rows]  # fmt: skip

    assert untimed(_rows(out)) == untimed(_rows(serial_out))  # and in matrix order
    cells = sorted(p.parent.relative_to(out) for p in out.glob("cells/**/summary.json"))
    assert cells == sorted(p.parent.relative_to(serial_out)
                           for p in serial_out.glob("cells/**/summary.json"))  # fmt: skip
    for cell in cells:
        assert _episodes(out / cell) == _episodes(serial_out / cell)
