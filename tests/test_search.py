"""``prunegym search``: the run directory, bad inputs (one line, exit 2, nothing
half-written), Ctrl-C -> checkpoint -> --resume with the same history, determinism."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest

from prunegym.experiments.cli import main
from prunegym.experiments.config import load_config
from prunegym.experiments.search import run_search
from prunegym.pruners import PruningPolicy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = [
    "workload.train_epochs=2",
    "search.episodes=6",
    "run.progress=false",
    "run.checkpoint_every=2",
    "run.threads=1",
]


def _cli(capsys, *argv):
    code = main(["search", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _sets(items):
    return [a for s in items for a in ("--set", s)]


def _history(run_dir):
    with open(run_dir / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row.pop("seconds")
    return rows


def test_ddpg_run_writes_the_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    sets = [*FAST, "search.options.warmup_episodes=2"]
    code, out, err = _cli(capsys, "--config", CONFIGS / "digits.yaml", *_sets(sets), "--out", run)
    assert code == 0, err
    assert "ddpg: 6 episodes, best reward" in out
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "run.json", "tb", "history.csv", "best_policy.json", "agent.zip",
            "checkpoint.zip", "summary.json"} <= names  # fmt: skip
    assert not [n for n in names if n.startswith(".")]  # no temporary files left
    assert any((run / "tb").iterdir())
    saved = load_config(run / "config.yaml")
    assert saved.search.episodes == 6 and saved.search.options["warmup_episodes"] == 2
    info = json.loads((run / "run.json").read_text())
    assert info["command"][:2] == ["prunegym", "search"] and "prunegym" in info["versions"]
    rows = _history(run)
    assert len(rows) == 6 and "reward" in rows[0] and "accuracy" in rows[0]
    assert any(k.startswith("sparsity/") for k in rows[0])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["episodes"] == 6
    units = [k.removeprefix("sparsity/") for k in rows[0] if k.startswith("sparsity/")]
    assert list(summary["best_sparsities"]) == units  # execution order: features.10 last
    assert units != sorted(units)
    policy = PruningPolicy.from_json(run / "best_policy.json")
    # the answer is picked on the held-out slice among the best candidates and the
    # actor's deterministic policy (which need not be in history.csv)
    assert 0.0 <= policy.meta["heldout_accuracy"] <= 1.0
    assert summary["best_reward"] == pytest.approx(policy.meta["reward"])
    assert summary["best_metrics"]["macs_ratio"] <= 0.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "search.agent=dqn"], "unknown agent 'dqn'"),
        (["--set", "search.episodez=3"], "unknown config key search.episodez"),
        (["--set", "env.ratio=abc"], "env.ratio must be a number"),
        (["--set", "workload.checkpoint=/nonexistent/model.pt"], "does not exist"),
        (
            ["--set", "search.agent=random", "--set", "search.options.bogus=1"],
            "searcher 'random' has no option 'bogus'",
        ),
        (["--set", "search.options.bogus=1"], "agent 'ddpg' has no option 'bogus'"),
        (["--set", "env.target=flops"], "unknown target"),
    ],
)
def test_bad_inputs_exit_2_with_one_line_and_no_run_directory(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    code, _, err = _cli(capsys, "--config", CONFIGS / "digits.yaml", *argv,
                          *_sets(FAST), "--out", run)  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert err.startswith("prunegym: error:")
    assert not run.exists()


def test_missing_config_and_resume_errors(tmp_path, capsys):
    for argv in (["--out", tmp_path / "x"], ["--config", tmp_path / "no.yaml", "--out", "x"],
                 ["--resume", tmp_path / "nothing"]):  # fmt: skip
        code, _, err = _cli(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1


class _SigintAfter:
    """Presses Ctrl-C (a real SIGINT) once ``n`` episodes are done."""

    def __init__(self, n):
        self.n = n

    def on_search_start(self, searcher):
        pass

    def on_episode(self, searcher, record):
        if len(searcher.history) == self.n:
            os.kill(os.getpid(), signal.SIGINT)

    def on_safe_point(self, searcher):
        pass

    def on_search_end(self, searcher, result):
        pass


@pytest.mark.parametrize("agent", ["random", "ddpg"])
def test_ctrl_c_checkpoints_and_resume_gives_the_same_history(tmp_path, capsys, agent):
    sets = [*FAST, f"search.agent={agent}", "run.tensorboard=false", "search.episodes=7"]
    sets += ["search.options={warmup_episodes: 2}"] if agent == "ddpg" else ["search.options={}"]
    cfg = load_config(CONFIGS / "digits.yaml", sets)
    full = tmp_path / "full"
    assert run_search(cfg, full).status == "completed"

    part = tmp_path / "part"
    outcome = run_search(cfg, part, extra_callbacks=[_SigintAfter(3)])
    assert outcome.status == "interrupted"
    assert len(_history(part)) == 3  # no completed episode lost
    assert json.loads((part / "summary.json").read_text())["status"] == "interrupted"
    # the same run directory without --resume is refused
    code, _, err = _cli(capsys, "--config", CONFIGS / "digits.yaml", *_sets(sets), "--out", part)
    assert code == 2 and "--resume" in err
    # resuming with another config is refused, with the saved one it completes
    code, _, err = _cli(capsys, "--resume", part, "--set", "env.ratio=0.3")
    assert code == 2 and "another config" in err and len(err.strip().splitlines()) == 1
    code, _, err = _cli(capsys, "--resume", part)
    assert code == 0, err
    assert _history(part) == _history(full)
    assert len(json.loads((part / "run.json").read_text())["resumed"]) == 1


def test_same_seed_same_history(tmp_path):
    cfg = load_config(CONFIGS / "digits.yaml",
                      [*FAST, "search.agent=evolution", "search.options={population: 3}",
                       "run.tensorboard=false"])  # fmt: skip
    run_search(cfg, tmp_path / "a")
    run_search(cfg, tmp_path / "b")
    assert _history(tmp_path / "a") == _history(tmp_path / "b")
    other = cfg.replace(seed=1)
    run_search(other, tmp_path / "c")
    assert _history(tmp_path / "c") != _history(tmp_path / "a")


class _FailAt(_SigintAfter):
    """A crash (not Ctrl-C) once ``n`` episodes are done."""

    def on_episode(self, searcher, record):
        if len(searcher.history) == self.n:
            raise RuntimeError("evaluator crashed")


def test_a_crash_leaves_only_whole_files(tmp_path):
    cfg = load_config(CONFIGS / "digits.yaml",
                      [*FAST, "search.agent=random", "search.options={}",
                       "run.tensorboard=false"])  # fmt: skip
    early = tmp_path / "early"
    with pytest.raises(RuntimeError):
        run_search(cfg, early, extra_callbacks=[_FailAt(1)])
    assert not early.exists()  # nothing worth keeping: no directory at all
    late = tmp_path / "late"
    with pytest.raises(RuntimeError):
        run_search(cfg, late, extra_callbacks=[_FailAt(3)])
    names = sorted(p.name for p in late.iterdir())
    assert not [n for n in names if n.startswith(".")]
    assert "checkpoint.zip" in names and "summary.json" not in names
    assert len(_history(late)) == 2  # the last checkpoint (every 2 episodes)
    assert run_search(cfg, late, resume=True).status == "completed"
    assert len(_history(late)) == 6
