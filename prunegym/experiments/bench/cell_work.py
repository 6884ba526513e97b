"""One bench cell's work: search it (fresh, restarted or resumed), export it, and record its
row; shared by the serial runner and the Ray tasks of :mod:`~prunegym.experiments.bench.parallel`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prunegym.experiments.bench.cells import EXPORT, RESTART, RESUME, Cell, Workload, read_json
from prunegym.experiments.bench.config import BenchConfig
from prunegym.experiments.bench.results import result_row, write_results

Log = Callable[[str], None]


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
