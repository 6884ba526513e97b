"""The parts of a search run that ``prunegym search`` and a generalist's run share: the
dense-model phase, the agent file and what a run produced."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunegym.experiments.config import Config
from prunegym.experiments.rundir import AGENT_FILE, BASE_MODEL_FILE
from prunegym.experiments.signals import stop_at_episode_boundary
from prunegym.experiments.workload import prepare_workload, train_dense

Log = Callable[[str], None]


@dataclass
class SearchRun:
    """What :func:`~prunegym.experiments.search.run_search` produced."""

    run_dir: Path
    result: Any  # prunegym.agents.SearchResult
    status: str  # "completed" | "interrupted"
    seconds: float
    signum: int | None = None  # the signal that interrupted it


def dense_model_phase(
    cfg: Config, run_dir: Path, resume: bool, log: Log, notes: Sequence[str]
) -> tuple[Any, Any]:
    """Check the setup, then train the dense model if needed; returns (workload, env).
    Nothing is logged before the checks pass (an error stays one line)."""
    base_path = run_dir / BASE_MODEL_FILE
    workload_cfg = cfg
    if resume and base_path.is_file():  # the dense model this run kept: trained or loaded
        workload_cfg = cfg.replace(**{"workload.checkpoint": str(base_path)})
    workload = prepare_workload(workload_cfg)
    for note in notes:
        log(f"note: {note}")
    if workload.needs_training:
        w = cfg.workload
        log(f"training {w.model} on {w.dataset} for {w.train_epochs} epoch(s)")
    env = train_dense(workload_cfg, workload, progress=cfg.run.progress)
    return workload, env


def save_agent_file(searcher: Any, run_dir: Path) -> None:
    from prunegym.agents import RLSearcher

    if isinstance(searcher, RLSearcher) and searcher.agent is not None:
        tmp = run_dir / f".{AGENT_FILE}.tmp.zip"
        searcher.save(tmp)
        os.replace(tmp, run_dir / AGENT_FILE)


def play_search(
    searcher: Any, env: Any, episodes: int, run_dir: Path, callbacks: Sequence[Any]
) -> SearchRun:
    """Search ``episodes`` episodes on ``env`` (Ctrl-C and SIGTERM stop at an episode
    boundary) and write the agent file; how it ended."""
    start = time.perf_counter()
    with stop_at_episode_boundary(searcher) as stop:
        result = searcher.search(env, episodes, callbacks=callbacks)
    seconds = time.perf_counter() - start
    interrupted = searcher.stop_requested and len(result.history) < episodes
    save_agent_file(searcher, run_dir)
    return SearchRun(run_dir, result, "interrupted" if interrupted else "completed", seconds,
                     stop.signum if interrupted else None)  # fmt: skip
