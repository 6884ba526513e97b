"""Searches on Ray workers (``search.workers > 1``): the same candidates and results as
serially, a complete run directory, a killed worker, and no Ray on the serial path."""

from __future__ import annotations

import csv
import io
import json
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray_helpers import (
    killing_env_fn,
    local_ray,  # noqa: F401 (fixture)
    tiny_env_fn,
)

pytest.importorskip("ray")

from prunegym.agents import ALGOS, make_searcher
from prunegym.agents.checkpoint import read_checkpoint
from prunegym.agents.factory import noise_sigma
from prunegym.agents.worker_pool import WorkerPool
from prunegym.experiments.cli import main
from prunegym.experiments.config import load_config
from prunegym.experiments.search import run_search

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DIGITS = [
    "workload.train_epochs=1",
    "search.episodes=5",
    "search.batch_size=2",
    "run.progress=false",
    "run.tensorboard=false",
    "run.checkpoint_every=1",
    "run.threads=1",
    "env.evaluator={mode: masked}",
    "distributed.threads_per_worker=1",
]


def comparable(history) -> list[tuple]:
    """What must agree between two searches (no timings, no cache flags)."""
    return [(r.episode, r.sparsities, r.reward, dict(r.metrics), dict(r.terms), r.kept,
             r.policy.to_json()) for r in history]  # fmt: skip


def search(name: str, env_fn, pool=None, episodes: int = 7, **options):
    searcher = make_searcher(name, env_fn(), seed=3, select_top=0, **options)
    searcher.use_workers(pool, batch_size=3)
    return searcher.search(episodes=episodes, progress=False).history


@pytest.mark.usefixtures("local_ray")
def test_one_and_two_workers_evaluate_the_same_candidates_with_the_same_results() -> None:
    env_fn = tiny_env_fn()
    with WorkerPool(env_fn, 2, threads_per_worker=1) as pool:
        cases = (("random", {}), ("evolution", {"population": 4}), ("cmaes", {"popsize": 4}))
        for name, options in cases:  # cmaes: batches of 3 stop at each generation of 4
            serial = search(name, env_fn, **options)
            parallel = search(name, env_fn, pool, **options)
            assert [r.episode for r in parallel] == list(range(7))
            assert comparable(parallel) == comparable(serial)
        assert len(set(pool.worker_pids())) == 2


@pytest.mark.usefixtures("local_ray")
def test_a_worker_killed_during_a_search_loses_and_duplicates_no_episode(tmp_path: Path) -> None:
    env_fn = tiny_env_fn()
    serial = search("evolution", env_fn, population=4)
    marker = tmp_path / "killed"
    dying = killing_env_fn(env_fn, str(marker), at_step=1, episode=2)
    with WorkerPool(dying, 2, threads_per_worker=1) as pool:
        parallel = search("evolution", env_fn, pool, population=4)
    assert marker.exists()  # a worker died mid-episode
    assert [r.episode for r in parallel] == list(range(7))
    assert comparable(parallel) == comparable(serial)


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key in ("seconds", "cache_hit"):
            row.pop(key, None)
    return rows


@pytest.mark.usefixtures("local_ray")
def test_a_search_with_two_workers_writes_the_serial_run_directory(tmp_path: Path) -> None:
    sets = [*DIGITS, "search.agent=random", "search.options={}"]
    serial = run_search(load_config(CONFIGS / "digits.yaml", sets), tmp_path / "serial")
    cfg = load_config(CONFIGS / "digits.yaml", [*sets, "search.workers=2"])
    run = run_search(cfg, tmp_path / "parallel")
    assert run.status == "completed" and len(run.result.history) == 5
    names = {p.name for p in run.run_dir.iterdir()}
    assert {"config.yaml", "run.json", "history.csv", "best_policy.json", "checkpoint.zip",
            "summary.json", "base_model.pt"} <= names  # fmt: skip
    assert not [n for n in names if n.startswith(".")]
    assert json.loads((run.run_dir / "summary.json").read_text())["status"] == "completed"
    assert load_config(run.run_dir / "config.yaml").search.workers == 2
    assert _history(run.run_dir) == _history(serial.run_dir)
    assert len(_history(run.run_dir)) == 5


@pytest.mark.usefixtures("local_ray")
def test_an_unreachable_cluster_is_one_line_exit_2_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    sets = [*DIGITS, "search.agent=random", "search.workers=2",
            f"distributed.address=127.0.0.1:{port}"]  # fmt: skip
    argv = ["search", "--config", str(CONFIGS / "digits.yaml"), "--out", str(out)]
    code = main([*argv, *[a for s in sets for a in ("--set", s)]])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "cannot reach the Ray cluster" in err
    assert not out.exists()


class _StopAfter:
    """Asks the searcher to stop (as Ctrl-C does) once ``n`` episodes are done."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_episode(self, searcher, record) -> None:
        if len(searcher.history) == self.n:
            searcher.request_stop()


@pytest.mark.usefixtures("local_ray")
def test_a_search_cut_at_one_worker_resumes_at_two(tmp_path: Path) -> None:
    sets = [*DIGITS, "search.agent=random", "search.options={}"]
    cfg = load_config(CONFIGS / "digits.yaml", sets)
    full = run_search(cfg, tmp_path / "full")
    part = run_search(cfg, tmp_path / "part", extra_callbacks=[_StopAfter(2)])
    assert part.status == "interrupted" and len(_history(part.run_dir)) == 2
    argv = ["search", "--resume", str(part.run_dir), "--set", "search.workers=2",
            "--set", "distributed.max_restarts=1"]  # fmt: skip
    assert main(argv) == 0
    assert _history(part.run_dir) == _history(full.run_dir)
    assert json.loads((part.run_dir / "summary.json").read_text())["status"] == "completed"


def test_one_worker_never_imports_ray(tmp_path: Path) -> None:
    sets = [*DIGITS, "search.agent=random", "search.options={}"]
    rl = [*DIGITS, "search.batch_size=1", "search.episodes=3",
          "search.options={warmup_episodes: 1}"]  # fmt: skip
    script = "\n".join([
        "import sys",
        "from prunegym.experiments.config import load_config",
        "from prunegym.experiments.search import run_search",
        f"for sets, out in (({sets!r}, 'random'), ({rl!r}, 'ddpg')):",
        f"    cfg = load_config({str(CONFIGS / 'digits.yaml')!r}, sets)",
        "    assert cfg.search.workers == 1",
        f"    run = run_search(cfg, {str(tmp_path)!r} + '/' + out)",
        "    assert len(run.result.history) == cfg.search.episodes",
        "print('ray' in sys.modules, any(m.startswith('ray.') for m in sys.modules))",
    ])  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["search.agent=ppo"], "or an off-policy agent (ddpg, td3, sac), not 'ppo'"),
        (["search.options={train_freq: 5}"], "train_freq counts episodes"),
    ],
)
def test_an_rl_search_workers_cannot_run_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: list[str], message: str
) -> None:
    out = tmp_path / "run"
    argv = ["search", "--config", str(CONFIGS / "digits.yaml"), "--out", str(out)]
    code = main([*argv, "--set", "search.workers=2", *[a for s in sets for a in ("--set", s)]])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not out.exists()


RL = [*DIGITS, "search.batch_size=1", "search.episodes=6",
      "search.options={warmup_episodes: 2}"]  # fmt: skip


def _checkpoint(run_dir: Path) -> tuple[dict, Any, Any]:
    """The checkpoint's history rows, its agent (SB3's zip) and its replay buffer."""
    state = read_checkpoint(run_dir / "checkpoint.zip")
    agent = ALGOS["ddpg"].load(io.BytesIO(state.blobs["agent.zip"]), device="cpu")
    buffer = pickle.loads(state.blobs["replay_buffer.pkl"])
    return state.meta["history"], agent, buffer


@pytest.mark.usefixtures("local_ray")
def test_ddpg_with_two_workers_completes_a_search_with_a_complete_run_directory(
    tmp_path: Path,
) -> None:
    run = run_search(load_config(CONFIGS / "digits.yaml", [*RL, "search.workers=2"]),
                     tmp_path / "run")  # fmt: skip
    assert run.status == "completed"
    names = {p.name for p in run.run_dir.iterdir()}
    assert {"config.yaml", "run.json", "history.csv", "best_policy.json", "checkpoint.zip",
            "summary.json", "agent.zip", "agent.json", "game.json"} <= names  # fmt: skip
    assert not [n for n in names if n.startswith(".")]
    rows = _history(run.run_dir)
    assert [int(r["episode"]) for r in rows] == list(range(6))  # each episode once, in order
    history, agent, buffer = _checkpoint(run.run_dir)
    assert [h["episode"] for h in history] == list(range(6))
    assert agent.n_envs == 2 and agent._episode_num == 6  # 3 rounds of 2 episodes
    # AMC's credit per finished episode: every transition carries its episode's reward;
    # an update after each round past the warm-up (rounds 2 and 3), one gradient step
    # per transition of those rounds
    assert buffer.pending == 0
    ends = np.flatnonzero(buffer.dones[: buffer.size(), 0])
    assert len(ends) == 6
    stored = buffer.rewards[: buffer.size(), 0]
    episode_rewards = np.float32([float(r["reward"]) for r in rows])
    assert set(stored.tolist()) == set(episode_rewards.tolist())
    assert agent._n_updates == buffer.size() - (ends[1] + 1)  # all but round 1's transitions
    # the noise decays per finished episode of either env (4 after the warm-up)
    assert run.result is not None
    sigma = noise_sigma(agent)
    assert sigma == pytest.approx(1.0 * 0.95**4)


@pytest.mark.usefixtures("local_ray")
def test_an_rl_search_cut_at_one_worker_resumes_at_two(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "digits.yaml", RL)
    part = run_search(cfg, tmp_path / "part", extra_callbacks=[_StopAfter(3)])
    assert part.status == "interrupted"
    before = _history(part.run_dir)
    assert main(["search", "--resume", str(part.run_dir), "--set", "search.workers=2"]) == 0
    rows = _history(part.run_dir)
    assert rows[:3] == before and [int(r["episode"]) for r in rows] == list(range(6))
    history, agent, _ = _checkpoint(part.run_dir)
    assert agent.n_envs == 2 and agent._episode_num == 6 and len(history) == 6
    # and back to one worker for more episodes
    argv = ["search", "--resume", str(part.run_dir), "--set", "search.episodes=8"]
    assert main(argv) == 0
    assert [int(r["episode"]) for r in _history(part.run_dir)] == list(range(8))
    _, agent, _ = _checkpoint(part.run_dir)
    assert agent.n_envs == 1 and agent._episode_num == 8
