"""``bench.workers``: serial benches never import Ray; with Ray, an unreachable address
fails before any work and Ctrl-C stops the running cells with their checkpoints saved.
(Two workers giving the serial bench's results: tests/test_bench.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_bench import _bench, _rows, _write_bench

pytest.importorskip("ray")

from ray_helpers import local_ray  # noqa: F401 (fixture)

from prunegym.experiments.bench import load_bench_config, run_bench

ROOT = Path(__file__).resolve().parents[1]


def test_one_worker_never_imports_ray(tmp_path):
    config = _write_bench(tmp_path, searchers=["uniform"], seeds=[0], finetune_epochs=0)
    script = (
        "import sys\n"
        "from prunegym.experiments.cli import main\n"
        f"code = main(['bench', '--config', {str(config)!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        "assert code == 0, code\n"
        "print('ray imported' if 'ray' in sys.modules else 'no ray')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "no ray"
    assert len(_rows(tmp_path / "out")) == 1


def test_an_unreachable_address_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a loopback port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address, message in ((f"127.0.0.1:{port}", "cannot reach the Ray cluster"),
                              ("nowhere", "bench.address must be")):  # fmt: skip
        config = _write_bench(tmp_path, workers=2, address=address)
        out = tmp_path / "out"
        start = time.perf_counter()
        code, _, err = _bench(monkeypatch, capsys, "--config", config, "--out", out)
        assert code == 2 and time.perf_counter() - start < 10
        assert len(err.strip().splitlines()) == 1 and message in err, err
        assert not out.exists()  # nothing written, no dense model trained


@pytest.mark.slow  # two bench invocations, one with a 200-episode search
@pytest.mark.usefixtures("local_ray")  # one Ray instance (2 CPUs) for both invocations
def test_ctrl_c_stops_running_cells_with_checkpoints_and_a_rerun_finishes(tmp_path):
    # uniform (one evaluation) finishes while random (many episodes) still searches
    path = _write_bench(tmp_path, searchers=["uniform", "random"], seeds=[0], episodes=200,
                        finetune_epochs=0, workers=2)  # fmt: skip
    cfg = load_bench_config(path)
    out = tmp_path / "out"
    lines: list[str] = []

    def ctrl_c_after_first_cell(line: str) -> None:
        lines.append(line)
        if line.startswith("[1/2]"):
            raise KeyboardInterrupt

    assert run_bench(cfg, out, log=ctrl_c_after_first_cell) == 130
    assert "checkpoints saved" in lines[-1]
    assert [r["searcher"] for r in _rows(out)] == ["uniform"]
    cut = out / "cells" / "tiny" / "macs0.5-l1" / "random-s0"
    assert (cut / "checkpoint.zip").is_file()  # stopped at an episode, checkpoint saved
    summary = json.loads((cut / "summary.json").read_text())
    assert summary["status"] != "completed" and summary["episodes"] < 200

    lines.clear()
    assert run_bench(cfg, out, log=lines.append) == 0
    assert any("random-s0: resumed" in line for line in lines), lines
    assert any("uniform-s0: finished earlier" in line for line in lines), lines
    assert [r["searcher"] for r in _rows(out)] == ["uniform", "random"]
    assert _rows(out)[1]["evaluated"] == 200
