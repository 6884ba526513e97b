"""``prunegym transfer``: an ordinary run directory (zero-shot episode 0, fine-tune, export,
--resume) plus transfer.json; every incompatibility is one line, exit 2, no directory."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from prunegym.experiments.cli import main
from prunegym.experiments.config import load_config
from prunegym.experiments.export import ExportOptions, export_run
from prunegym.experiments.search import run_search

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = ["run.progress=false", "run.tensorboard=false", "run.threads=1", "run.checkpoint_every=1"]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A DDPG search of 3 episodes on smallcnn (digits), with agent.json and game.json."""
    run = tmp_path_factory.mktemp("src") / "run"
    cfg = load_config(CONFIGS / "digits.yaml", [*QUIET, "workload.train_epochs=1",
                      "search.episodes=3", "search.options.warmup_episodes=1"])  # fmt: skip
    run_search(cfg, run)  # writes agent.json and game.json itself
    return run


def _transfer(capsys, src, out, *extra, episodes=None, target=None):
    target = target or [f"workload.checkpoint={src / 'base_model.pt'}"]
    sets = [a for s in [*QUIET, *target] for a in ("--set", s)]
    argv = ["transfer", "--from", str(src), "--config", str(CONFIGS / "digits.yaml"), *sets,
            "--out", str(out), *extra]  # fmt: skip
    if episodes is not None:
        argv += ["--episodes", str(episodes)]
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in r.items() if k not in ("seconds", "cache_hit")} for r in rows]


def test_transfer_writes_a_run_directory_that_export_and_resume_accept(source, tmp_path, capsys):
    out = tmp_path / "vgg"
    target = ["workload.checkpoint=null", "workload.model=vgg11", "workload.train_epochs=1",
              "env.ratio=0.4"]  # fmt: skip
    code, printed, err = _transfer(capsys, source, out, episodes=2, target=target)
    assert code == 0, err
    assert "agent transfer from" in printed and "zero-shot reward" in printed
    assert "(trained on smallcnn on digits (4 units, ratio 0.5))" in printed
    assert "differs from the source: target_ratio: 0.5 (agent) -> 0.4 (target)" in printed
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "run.json", "history.csv", "best_policy.json", "summary.json",
            "checkpoint.zip", "agent.zip", "agent.json", "game.json", "transfer.json",
            "base_model.pt"} <= names  # fmt: skip
    assert not [n for n in names if n.startswith(".")]
    rows = _rows(out)
    assert [r["episode"] for r in rows] == ["0", "1", "2"]
    info = json.loads((out / "transfer.json").read_text())
    assert info["mode"] == "agent" and info["from"] == str(source.resolve())
    assert info["zero_shot"]["reward"] == pytest.approx(float(rows[0]["reward"]))
    assert info["differences"] == ["target_ratio: 0.5 (agent) -> 0.4 (target)"]
    assert info["reward_baseline_carried"] and info["fine_tune"]["episodes"] == 2
    assert info["checks"]["feature_version"] == "same as the source"
    assert json.loads((out / "agent.json").read_text())["sources"][0]["model"] == "vgg11"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == "transfer" and summary["episodes"] == 3
    assert summary["best_metrics"]["macs_ratio"] <= 0.4
    assert load_config(out / "config.yaml").search.options["source"] == str(source.resolve())

    metrics = export_run(out, ExportOptions(epochs=0, latency_repeats=1, progress=False))
    assert metrics["search"]["agent"] == "transfer" and metrics["budget"]["ratio"] == 0.4
    assert metrics["pruned"]["macs"] <= 0.4 * metrics["dense"]["macs"]
    assert (out / "export" / "model.pt").is_file()

    code = main(["search", "--resume", str(out), "--set", "search.episodes=4"])
    assert code == 0, capsys.readouterr().err
    resumed = _rows(out)
    assert len(resumed) == 4 and resumed[:3] == rows


def test_episodes_zero_is_the_zero_shot_policy_alone(source, tmp_path, capsys):
    code, _, err = _transfer(capsys, source, tmp_path / "zero")
    assert code == 0, err
    assert len(_rows(tmp_path / "zero")) == 1
    again = tmp_path / "zero-again"
    assert _transfer(capsys, source, again)[0] == 0
    assert _rows(again) == _rows(tmp_path / "zero")  # deterministic


def _copy_with(source: Path, tmp_path: Path, **changes) -> Path:
    copy = tmp_path / "edited-source"
    shutil.copytree(source, copy)
    meta = json.loads((copy / "agent.json").read_text())
    meta.update(changes)
    (copy / "agent.json").write_text(json.dumps(meta))
    return copy


@pytest.mark.parametrize(
    ("edit", "extra", "message"),
    [
        ({"feature_version": 1}, [], "feature_version trained with 1"),
        ({"action_mapping": "relative-v0"}, [], "action_mapping trained with 'relative-v0'"),
        ({}, ["env.granularity=weight", "env.max_sparsity=0.9"], "granularity trained with"),
        ({}, ["search.episodes=9"], "set the searcher with --mode"),
    ],
)
def test_an_incompatible_source_is_one_line_exit_2_and_no_directory(
    source, tmp_path, capsys, edit, extra, message
):
    src = _copy_with(source, tmp_path, **edit) if edit else source
    out = tmp_path / "out"
    target = [f"workload.checkpoint={source / 'base_model.pt'}", *extra]
    code, _, err = _transfer(capsys, src, out, episodes=1, target=target)
    assert code == 2 and err.startswith("prunegym: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_source_without_an_agent_is_refused_before_anything_is_built(source, tmp_path, capsys):
    no_agent = tmp_path / "uniform-run"
    no_agent.mkdir()
    shutil.copy(source / "best_policy.json", no_agent)
    text = tmp_path / "agent.zip"
    text.write_text("hello")
    for src, message in ((no_agent, "holds no agent"), (text, "not an agent (not a zip file)"),
                         (tmp_path / "missing", "missing does not exist")):  # fmt: skip
        out = tmp_path / "out"
        code, _, err = _transfer(capsys, src, out, target=["workload.checkpoint=/nonexistent"])
        assert code == 2 and message in err and not out.exists(), err


def test_profile_mode_needs_no_agent(source, tmp_path, capsys):
    no_agent = tmp_path / "uniform-run"
    no_agent.mkdir()
    for name in ("best_policy.json", "game.json"):
        shutil.copy(source / name, no_agent)
    out = tmp_path / "profile"
    target = [f"workload.checkpoint={source / 'base_model.pt'}"]
    code, printed, err = _transfer(capsys, no_agent, out, "--mode", "profile", target=target)
    assert code == 0, err
    assert "profile transfer from" in printed
    info = json.loads((out / "transfer.json").read_text())
    assert info["mode"] == "profile" and info["mapped_by"] == "relative depth and unit kind"
    assert len(_rows(out)) == 1
    code, _, err = _transfer(
        capsys, no_agent, tmp_path / "p2", "--mode", "profile", episodes=2, target=target
    )
    assert code == 2 and "--episodes applies to --mode agent" in err
    assert not (tmp_path / "p2").exists()
