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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from prunegym.experiments.bench.cell_work import (
    Log,
    ensure_dense,
    finished_row,
    progress_line,
    record_row,
    work_on_cell,
)
from prunegym.experiments.bench.cells import (
    DONE,
    Cell,
    cell_state,
    check_existing,
    expand,
)
from prunegym.experiments.bench.config import BenchConfig
from prunegym.experiments.bench.results import read_results
from prunegym.experiments.config import ConfigError
from prunegym.utils.files import atomic_write_text

BENCH_FILE = "bench.yaml"
SUMMARY_FILE = "summary.md"
PARETO_FILE = "pareto.png"
CURVES_FILE = "curves.png"


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
        state = cell_state(cell, out, cfg)
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


def _done(cell: Cell, cfg: BenchConfig, out: Path) -> bool:
    return cell_state(cell, out, cfg) == DONE


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
