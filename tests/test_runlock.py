"""One writer per run directory: a second search, run or export fails at once naming the
holder's PID; a lock left by a process killed with SIGKILL never blocks --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from prunegym.experiments.cli import main
from prunegym.experiments.config import load_config
from prunegym.experiments.runlock import LOCK_FILE, run_dir_lock
from prunegym.experiments.search import run_search

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = ["workload.train_epochs=1", "search.agent=random", "search.episodes=3",
        "run.progress=false", "run.tensorboard=false", "run.threads=1"]  # fmt: skip
HOLD = """
import sys, time
from prunegym.experiments.runlock import run_dir_lock
with run_dir_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("lock") / "run"
    run_search(load_config(CONFIGS / "digits.yaml", FAST), run_dir)
    return run_dir


def _hold(run_dir: Path) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prunegym: error: "), err
    return err[0]


def test_a_second_writer_fails_before_training_and_a_killed_holder_does_not_block_resume(
    finished_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained although the run directory is in use")

    monkeypatch.setattr("prunegym.experiments.training.train", no_training)
    before = {p.name: p.stat().st_mtime_ns for p in finished_run.iterdir()}
    holder = _hold(finished_run)
    try:
        sets = [a for s in FAST for a in ("--set", s)]
        for argv in (["search", "--resume", str(finished_run), "--set", "search.episodes=5"],
                     ["search", "--config", str(CONFIGS / "digits.yaml"), *sets, "--out",
                      str(finished_run)],
                     ["run", "--resume", str(finished_run), "--epochs", "0"],
                     ["export", str(finished_run), "--epochs", "0"]):  # fmt: skip
            assert main(argv) == 2, argv
            line = _one_error_line(capsys)
            assert f"in use by another prunegym process (PID {holder.pid})" in line, line
        after = {p.name: p.stat().st_mtime_ns for p in finished_run.iterdir()}
        assert {k: v for k, v in after.items() if k != LOCK_FILE} == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    monkeypatch.undo()
    assert (finished_run / LOCK_FILE).is_file()  # left behind by the killed process
    code = main(["search", "--resume", str(finished_run), "--set", "search.episodes=5"])
    assert code == 0, capsys.readouterr().err
    assert not (finished_run / LOCK_FILE).exists()  # released and removed at the end


def test_the_lock_is_exclusive_and_reentrant_within_a_process(tmp_path: Path) -> None:
    with run_dir_lock(tmp_path):
        with run_dir_lock(tmp_path):  # run holds it across its search and its export
            assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
        assert (tmp_path / LOCK_FILE).is_file()  # still held by the outer block
        holder = _hold_in_child_expecting_failure(tmp_path)
        assert f"PID {os.getpid()}" in holder
    assert not (tmp_path / LOCK_FILE).exists()


def _hold_in_child_expecting_failure(run_dir: Path) -> str:
    code = (
        "import sys\n"
        "from prunegym.experiments.runlock import RunDirectoryBusy, run_dir_lock\n"
        "try:\n"
        "    with run_dir_lock(sys.argv[1]):\n"
        "        print('acquired')\n"
        "except RunDirectoryBusy as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True,
                         text=True, env=env, timeout=120, check=True)  # fmt: skip
    assert "acquired" not in out.stdout
    return out.stdout
