"""SIGTERM (what timeout, SLURM and Kubernetes send) is handled like Ctrl-C, in a real
``prunegym search`` process: the search stops at an episode boundary, checkpoints and
exits 143 with a message; during the dense training it leaves nothing behind."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from prunegym.experiments.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _search(run_dir: Path, *sets: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "prunegym", "search", "--config", str(CONFIGS / "digits.yaml"),
            "--out", str(run_dir), "--no-progress"]  # fmt: skip
    for s in ("run.threads=1", "run.tensorboard=false", *sets):
        argv += ["--set", s]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())  # fmt: skip


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_during_the_search_checkpoints_and_resume_completes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _search(run_dir, "workload.train_epochs=1", "search.agent=random",
                   "search.episodes=100000", "run.checkpoint_every=2")  # fmt: skip
    _wait_for(lambda: (run_dir / "checkpoint.zip").is_file(), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM: stopping after this episode and saving a checkpoint" in err
    assert "checkpoint saved. Continue with: prunegym search --resume" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    with open(run_dir / "history.csv") as fh:
        done = len(list(csv.DictReader(fh)))
    assert done == summary["episodes"] >= 2  # every finished episode is in the checkpoint
    assert not (run_dir / "run.lock").exists()

    code = main(["search", "--resume", str(run_dir), "--set", f"search.episodes={done + 2}",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    assert json.loads((run_dir / "summary.json").read_text())["episodes"] == done + 2


def test_sigterm_during_the_dense_training_leaves_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "run"
    proc = _search(run_dir, "workload.train_epochs=100000", "search.agent=random",
                   "search.episodes=2")  # fmt: skip
    assert proc.stderr is not None
    lines = [proc.stderr.readline(), proc.stderr.readline()]
    assert "search.options (warmup_episodes) belong to agent 'ddpg'" in lines[0], lines
    assert "training smallcnn on digits for 100000 epoch(s)" in lines[1], lines
    _wait_for(lambda: run_dir.is_dir(), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "prunegym: interrupted"
    assert not (tmp_path / "runs").exists()
