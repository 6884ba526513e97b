"""Run a bench matrix cell by cell, resumably, then write its summary and figures.

Each cell is searched with :func:`~prunegym.experiments.search.run_search` (resumed from
its checkpoint when a previous bench was cut) and its selected policy is applied,
fine-tuned and tested by :func:`~prunegym.experiments.export.export_run`. A cell whose
run directory is complete and whose results line exists is skipped without building
any model, so rerunning a finished bench only rewrites the summary and the figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from prunegym.experiments.bench.cells import (
    DONE,
    EXPORT,
    RESTART,
    RESUME,
    Cell,
    Workload,
    cell_state,
    check_existing,
    expand,
    read_json,
)
from prunegym.experiments.bench.config import BenchConfig
from prunegym.experiments.bench.results import read_results, result_row, write_results
from prunegym.experiments.config import ConfigError
from prunegym.utils.files import atomic_write_text

BENCH_FILE = "bench.yaml"
SUMMARY_FILE = "summary.md"
PARETO_FILE = "pareto.png"
CURVES_FILE = "curves.png"

Log = Callable[[str], None]


def run_bench(
    cfg: BenchConfig,
    out: str | Path,
    *,
    command: Sequence[str] = (),
    regenerate: str = "",
    log: Log = print,
) -> int:
    """Run every unfinished cell of ``cfg`` under ``out``; 0, or 130 when a search was
    stopped by Ctrl-C (its checkpoint saved: rerunning the same command continues it).

    ``bench.workers`` > 1 runs the cells as Ray tasks
    (:mod:`~prunegym.experiments.bench.parallel`); 1 runs them here, one by one. Every
    config error (and an unreachable Ray address) surfaces before anything is built or
    written.
    """
    out = Path(out)
    cells = expand(cfg, out)
    check_existing(cells, out)
    check_finetune_samples(cfg, [c for c in cells if not _done(c, cfg, out)])
    with _cell_engine(cfg):
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / BENCH_FILE, bench_yaml(cfg))
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        results = read_results(out)
        if cfg.workers == 1:
            status = _run_serial(cells, cfg, out, results, command, log)
        else:
            from prunegym.experiments.bench.parallel import run_parallel

            status = run_parallel(cells, cfg, out, results, command, log)
    finished = [results[c.key] for c in cells if c.key in results]
    if finished:
        write_reports(out, finished, cfg, len(cells), regenerate or " ".join(command))
    return status


def _cell_engine(cfg: BenchConfig) -> contextlib.AbstractContextManager:
    """Ray for ``bench.workers`` > 1 (connected now: a bad address fails before any
    work); nothing, and no Ray import, for 1."""
    if cfg.workers == 1:
        return contextlib.nullcontext()
    from prunegym.experiments.bench.parallel import bench_ray

    return bench_ray(cfg)


def _run_serial(
    cells: Sequence[Cell],
    cfg: BenchConfig,
    out: Path,
    results: dict[str, dict[str, Any]],
    command: Sequence[str],
    log: Log,
) -> int:
    for i, cell in enumerate(cells, 1):
        state = cell_state(cell, out, cfg.finetune_epochs, cfg.finetune_samples)
        if state == DONE:
            row, action = finished_row(cell, out, results.get(cell.key))
        else:
            ensure_dense(cell.workload, log)
            found, action = work_on_cell(cell, cfg, out, state, command)
            if found is None:
                log(f"[{i}/{len(cells)}] {cell.key}: stopped; checkpoint saved, rerun the "
                    "same command to continue")  # fmt: skip
                return 130
            row = found
        record_row(out, cells, results, row)
        log(progress_line(i, len(cells), row, action))
    return 0


def record_row(
    out: Path, cells: Sequence[Cell], results: dict[str, dict[str, Any]], row: dict[str, Any]
) -> None:
    """Add a finished cell's row and rewrite results.jsonl (atomically, matrix order)."""
    results[row["cell"]] = row
    write_results(out, ordered_rows(cells, results))


def finished_row(
    cell: Cell, out: Path, old: Mapping[str, Any] | None
) -> tuple[dict[str, Any], str]:
    """The row of a cell with nothing left to do: its row from an earlier invocation
    when it describes the same export, else one built from the run directory."""
    from prunegym.experiments.rundir import EXPORT_DIR, METRICS_FILE

    metrics = read_json(cell.run_dir(out) / EXPORT_DIR / METRICS_FILE)
    tuned = metrics.get("fine_tune") or {}
    if old is not None and (old.get("finetune_epochs"), old.get("finetune_samples")) == (
        tuned.get("epochs"), tuned.get("train_samples")):  # fmt: skip
        return dict(old), "finished earlier"
    return result_row(cell, out, metrics, None), "collected"


def work_on_cell(
    cell: Cell, cfg: BenchConfig, out: Path, state: str, command: Sequence[str]
) -> tuple[dict[str, Any] | None, str]:
    """Search (fresh, restarted or resumed) and export a cell that is not done: its row
    with this invocation's wall time and what was done; ``(None, "stopped")`` when its
    search was stopped (Ctrl-C: checkpoint saved). Its dense model must exist."""
    from prunegym.experiments.search import run_search

    start = time.perf_counter()
    run_dir = cell.run_dir(out)
    action = "exported"
    if state != EXPORT:
        if state == RESTART:  # cut before its first checkpoint: nothing worth keeping
            shutil.rmtree(run_dir)
        outcome = run_search(cell.config, run_dir, command=command, resume=state == RESUME)
        if outcome.status != "completed":
            return None, "stopped"
        action = "resumed" if state == RESUME else "searched"
    metrics = export_cell(cell, cfg, out, command)
    return result_row(cell, out, metrics, time.perf_counter() - start), action


def export_cell(
    cell: Cell, cfg: BenchConfig, out: Path, command: Sequence[str] = ()
) -> dict[str, Any]:
    """Apply the cell's selected policy for real, fine-tune it and test it."""
    from prunegym.experiments.export import ExportOptions, export_run

    opts = ExportOptions(epochs=cfg.finetune_epochs, seed=cell.seed, device=cfg.device,
                         threads=cfg.threads, latency_repeats=cfg.latency_repeats,
                         train_samples=cfg.finetune_samples, progress=False)  # fmt: skip
    return export_run(cell.run_dir(out), opts, command=command)


def _done(cell: Cell, cfg: BenchConfig, out: Path) -> bool:
    return cell_state(cell, out, cfg.finetune_epochs, cfg.finetune_samples) == DONE


def check_finetune_samples(cfg: BenchConfig, pending: Sequence[Cell]) -> None:
    """``bench.finetune_samples`` must fit the train split of every workload with work
    left (its configured dataset, loaded once); refused before any search."""
    if cfg.finetune_samples is None:
        return
    from prunegym.experiments.workload import configured_data

    works = {c.workload.name: c.workload for c in pending}
    for work in works.values():
        size = len(configured_data(work.config).train)
        if cfg.finetune_samples > size:
            raise ConfigError(f"bench.finetune_samples {cfg.finetune_samples} exceeds the "
                              f"{size} training samples of workload {work.path}")  # fmt: skip


def ensure_dense(work: Workload, log: Log = print) -> None:
    """Train the workload's dense model once (atomically saved) when the bench keeps it."""
    if work.dense is None or work.dense.is_file():
        return
    from prunegym.experiments.checkpoint import save_checkpoint
    from prunegym.experiments.workload import build_workload

    w = work.config.workload
    log(f"training the dense {w.model} of {work.name} ({w.train_epochs} epochs, "
        f"seed {w.train_seed}) -> {work.dense}")  # fmt: skip
    model, data = build_workload(work.config)
    save_checkpoint(work.dense, model, model_name=str(w.model), in_channels=data.in_channels,
                    num_classes=data.num_classes, dataset=data.describe(),
                    extra={"workload_config": work.path})  # fmt: skip


def ordered_rows(
    cells: Sequence[Cell], results: Mapping[str, Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """This matrix's rows in matrix order, then rows of cells it no longer names."""
    keys = [c.key for c in cells if c.key in results]
    keys += [k for k in results if k not in set(keys)]
    return [results[k] for k in keys]


def progress_line(i: int, n: int, row: Mapping[str, Any], action: str) -> str:
    before, after = row["test_top1_before_finetune"], row["test_top1_after_finetune"]
    proxy = row.get("proxy_accuracy")
    wall = row.get("wall_seconds")
    return (f"[{i}/{n}] {row['cell']}: {action}; {row['evaluated']} evaluations, proxy "
            f"{'-' if proxy is None else f'{proxy:.2%}'}, {row['target']} ratio "
            f"{row['achieved_ratio']:.3f}, test top-1 {before:.2%} -> {after:.2%} "
            f"({row['finetune_epochs']} FT epochs"
            + ("" if row.get("finetune_samples") is None else
               f" on {row['finetune_samples']} samples") + ")"
            + ("" if wall is None else f", {wall:.1f} s"))  # fmt: skip


def write_reports(
    out: Path, rows: Sequence[Mapping[str, Any]], cfg: BenchConfig, total: int, command: str
) -> None:
    """summary.md, pareto.png and curves.png from the finished rows (and their histories)."""
    from prunegym.experiments.bench.plots import plot_curves, plot_pareto
    from prunegym.experiments.bench.summary import render_summary
    from prunegym.experiments.rundir import read_history

    atomic_write_text(out / SUMMARY_FILE, render_summary(rows, cfg, total, command))
    plot_pareto(rows, out / PARETO_FILE)
    histories = {r["cell"]: read_history(out / r["run_dir"]) for r in rows}
    plot_curves(rows, histories, out / CURVES_FILE)


def bench_yaml(cfg: BenchConfig) -> str:
    """The resolved bench config (``prunegym bench --config DIR/bench.yaml`` reruns it)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return yaml.safe_dump({"bench": plain(dataclasses.asdict(cfg))}, sort_keys=False)
