"""The run directory: its file names, opening it for one writer, and the files about the run.

Run directory::

    config.yaml        the resolved config (every default filled in)
    run.json           command line(s), prunegym/torch/SB3 versions, start and resume times
    tb/                TensorBoard: per-episode reward, its terms, metrics, seconds,
                       per-unit sparsities (scalars and histograms), hparams
    history.csv        one row per evaluated episode (sparsities, metrics, reward, seconds)
    best_policy.json   the best PruningPolicy so far (rewritten when it improves)
    agent.zip          the SB3 agent (RL searchers), written at the end
    checkpoint.zip     the searcher's whole state: history and RNGs as JSON + arrays (no
                       pickle); for RL searchers also SB3's agent and replay buffer
    base_model.pt      the dense model, unless workload.checkpoint is a prunegym train
                       file: trained here or loaded from plain weights (export prunes it)
    summary.json       best reward and metrics, episodes, seconds per episode, status
    run.lock           present while a command writes the directory (see ``runlock``)
    export/            what ``prunegym export`` made (model, ONNX, metrics, report, plots)

Every file is written atomically (temporary file + rename), so an interrupted or failed
run never leaves a half-written file; a run that fails before its first checkpoint
leaves no directory at all. ``agent.zip`` and the SB3 parts of
``checkpoint.zip`` (agent, replay buffer) use cloudpickle by SB3's design: load run
directories from trusted sources only. A searcher's own state (history, RNGs) is JSON and
arrays and never unpickled.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prunegym.experiments.config import Config, ConfigError
from prunegym.experiments.runlock import LOCK_FILE, run_dir_lock
from prunegym.utils.files import atomic_write_text, write_json

CONFIG_FILE = "config.yaml"
RUN_INFO_FILE = "run.json"
HISTORY_FILE = "history.csv"
BEST_POLICY_FILE = "best_policy.json"
AGENT_FILE = "agent.zip"
CHECKPOINT_FILE = "checkpoint.zip"
BASE_MODEL_FILE = "base_model.pt"  # the dense model, unless in a prunegym train file
SUMMARY_FILE = "summary.json"
EXPORT_DIR = "export"
METRICS_FILE = "metrics.json"  # in EXPORT_DIR
#: What makes a directory a schedule's (:mod:`prunegym.experiments.schedule`).
SCHEDULE_FILE = "schedule.json"
#: Keys that may differ between a run and its resumption (a key also covers the keys
#: under it): how many episodes, where and how it runs, never what is searched. The
#: workers are among them: a search cut at N workers continues at any other number.
RESUMABLE_KEYS = ("search.episodes", "run.progress", "run.out", "run.threads",
                  "search.workers", "distributed")  # fmt: skip


def check_writable_dir(path: Path, label: str = "--out") -> None:
    """Fail now, with one line, if ``path`` cannot become a directory we can write in."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{label} {path} exists and is not a directory")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"{label} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{label} {path}: {parent} is not writable")


@contextlib.contextmanager
def open_run_dir(run_dir: Path, resume: bool) -> Iterator[bool]:
    """Create (or, with ``resume``, reopen) ``run_dir`` and hold its lock; yields whether
    the directory was created here. A failure before the first checkpoint removes a
    directory created here, so nothing half-made is left."""
    check_writable_dir(run_dir)
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"{run_dir} is not a search run directory (no {CONFIG_FILE})")
        if not (run_dir / CHECKPOINT_FILE).is_file():
            raise ConfigError(f"{run_dir} has no {CHECKPOINT_FILE} to resume from")
    with locked_dir(run_dir, keep=lambda: (run_dir / CHECKPOINT_FILE).exists()) as created:
        if not resume and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
            raise ConfigError(f"run directory {run_dir} already exists; use --resume "
                              f"{run_dir} to continue it or choose another --out")  # fmt: skip
        with tempfile.TemporaryFile(dir=run_dir):
            pass  # writable, for real (permissions, read-only mounts)
        yield created


@contextlib.contextmanager
def locked_dir(path: Path, keep: Callable[[], bool]) -> Iterator[bool]:
    """Create ``path`` (and missing parents) if needed and hold its lock; yields whether it
    was created here. On a failure a directory created here (from its outermost new
    parent) is removed, unless ``keep()`` says it already holds something to resume."""
    created = not path.exists()
    top = path  # the outermost directory made here
    while not top.parent.exists():
        top = top.parent
    path.mkdir(parents=True, exist_ok=True)
    with run_dir_lock(path):
        ok = False
        try:
            yield created
            ok = True
        finally:
            if not ok and created and not keep():
                shutil.rmtree(top, ignore_errors=True)  # still locked: no one else in it


def is_schedule_dir(path: Path) -> bool:
    """Whether ``path`` is a schedule's directory (``prunegym run`` with ``run.schedule``)."""
    return (Path(path) / SCHEDULE_FILE).is_file()


def versions() -> dict[str, str]:
    """The versions that made a run: prunegym, torch, stable-baselines3."""
    import stable_baselines3
    import torch

    from prunegym import __version__

    return {"prunegym": __version__, "torch": str(torch.__version__),
            "stable_baselines3": stable_baselines3.__version__}  # fmt: skip


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_run_info(
    run_dir: Path, command: Sequence[str], resume: bool, episodes_done: int = 0
) -> None:
    """``run.json``: the first command and when it started; each resumption appended."""
    path = run_dir / RUN_INFO_FILE
    if resume:
        info = json.loads(path.read_text())
        info.setdefault("resumed", []).append(
            {"command": list(command), "at": now(), "episodes_done": episodes_done}
        )
    else:
        info = {"command": list(command), "started": now(), "versions": versions(),
                "cwd": os.getcwd()}  # fmt: skip
    write_json(path, info)


def write_config(run_dir: Path, cfg: Config) -> None:
    atomic_write_text(run_dir / CONFIG_FILE, cfg.to_yaml())


def write_summary(
    run_dir: Path, cfg: Config, result: Any, status: str, seconds: float
) -> dict[str, Any]:
    """``summary.json``: status, best reward and metrics, per-unit sparsities of the best
    policy in execution order, episodes and their mean duration."""
    best = result.best
    per_episode = [float(r.seconds) for r in result.history]
    summary = {
        "status": status,
        "agent": cfg.search.agent,
        "seed": cfg.seed,
        "episodes": len(result.history),
        "episodes_requested": cfg.search.episodes,
        "best_episode": None if best is None else int(best.episode),
        "best_reward": None if best is None else float(best.reward),
        "best_metrics": None if best is None else {k: float(v) for k, v in best.metrics.items()},
        "best_sparsities": None if best is None else {
            name: float(s) for name, s in zip(result.unit_names, best.sparsities, strict=True)},
        "seconds_per_episode_mean": sum(per_episode) / max(1, len(per_episode)),
        "seconds_this_session": seconds,
    }  # fmt: skip
    write_json(run_dir / SUMMARY_FILE, summary)
    return summary


class HistoryFile:
    """A search callback that rewrites ``history.csv`` at every safe point (after the
    checkpoint callback ran, so history and checkpoint agree)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.written = -1

    def on_search_start(self, searcher: Any) -> None:
        pass

    def on_episode(self, searcher: Any, record: Any) -> None:
        pass

    def on_safe_point(self, searcher: Any) -> None:
        if len(searcher.history) != self.written:
            searcher.result().to_csv(self.run_dir / HISTORY_FILE)
            self.written = len(searcher.history)

    def on_search_end(self, searcher: Any, result: Any) -> None:
        result.to_csv(self.run_dir / HISTORY_FILE)


def read_history(run_dir: Path) -> list[dict[str, str]]:
    """``history.csv`` as rows of strings (empty when the run has none)."""
    path = run_dir / HISTORY_FILE
    if not path.is_file():
        return []
    return list(csv.DictReader(io.StringIO(path.read_text())))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when it is missing or unreadable."""
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return data
    return {}


def workload_source(cfg: Any) -> dict[str, Any]:
    """What a run records as its model and dataset (``agent.json``, ``game.json``)."""
    w = cfg.workload
    return {"model": w.model, "checkpoint": w.checkpoint, "dataset": w.dataset}


TRANSFER_FILE = "transfer.json"
MODES = {"agent": "transfer", "profile": "profile"}  # transfer --mode -> searcher name


def transfer_mode(searcher_name: str) -> str:
    """The ``--mode`` of a transfer searcher (``transfer`` -> agent, ``profile``)."""
    return next(mode for mode, name in MODES.items() if name == searcher_name)


class TransferFileCallback:
    """Writes ``transfer.json`` from the searcher's ``report()`` when the search ends
    (a search callback; also what a resumed transfer run should use)."""

    def __init__(self, run_dir: Path, source: Path, mode: str) -> None:
        self.path = run_dir / TRANSFER_FILE
        self.source, self.mode = source, mode

    def on_search_end(self, searcher: Any, result: Any) -> None:
        from prunegym.utils.files import write_json

        write_json(self.path, {**searcher.report(), "mode": self.mode,
                               "from": str(self.source.resolve())})  # fmt: skip
