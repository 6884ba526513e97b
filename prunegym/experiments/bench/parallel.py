"""Bench cells as Ray tasks (``bench.workers`` > 1).

Each unfinished cell (its search, resumed or not, and its export) is one Ray task with
``bench.resources_per_cell`` (torch threads = its ``num_cpus``), run by
:func:`~prunegym.agents.ray_cluster.map_tasks`; Ray schedules them. The driver (this
process) trains each workload's dense model once before any task, writes
``results.jsonl`` (atomically, in matrix order) and a progress line as each cell
finishes, so a cut bench resumes exactly as a serial one: finished cells are skipped,
cut ones continue from their checkpoints. Ctrl-C stops the running searches at their
next episode (checkpoint saved), waits for them and returns 130.

Imported only for ``bench.workers`` > 1; Ray itself is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunegym.experiments.bench.cell_work import (
    Log,
    ensure_dense,
    finished_row,
    progress_line,
    record_row,
    work_on_cell,
)
from prunegym.experiments.bench.cells import DONE, Cell, cell_state
from prunegym.experiments.bench.config import BenchConfig
from prunegym.experiments.config import ConfigError
from prunegym.experiments.signals import exit_status


@contextlib.contextmanager
def bench_ray(cfg: BenchConfig) -> Iterator[None]:
    """Connect to Ray for the bench's workers: ``bench.address``, or (unset) a local
    instance sized to ``workers`` x ``resources_per_cell``, shut down at the end. An
    unreachable or malformed address is a one-line :class:`ConfigError` here."""
    import ray

    from prunegym.agents.ray_cluster import RayAddressError, init_ray

    started = not ray.is_initialized()
    resources = {"num_cpus": cfg.cell_cpus, **cfg.resources_per_cell}
    try:
        init_ray(cfg.address, cfg.workers, resources)
    except RayAddressError as exc:
        raise ConfigError(str(exc).replace("distributed.address", "bench.address")) from None
    try:
        yield
    finally:
        if started:
            ray.shutdown()


@dataclass(frozen=True)
class CellJob:
    """What one Ray task needs: the cell, what is left to do for it, and where."""

    cell: Cell
    state: str
    cfg: BenchConfig
    out: Path
    command: tuple[str, ...]
    cwd: str  # the driver's directory: relative paths of the configs are read from it


def run_cell_job(job: CellJob) -> tuple[dict[str, Any] | None, str]:
    """The task: search and export one cell with ``num_cpus`` torch threads (also the
    threads of its search config and its export's latency timing)."""
    import torch

    if os.path.isdir(job.cwd):  # a worker on another machine reads the same paths
        os.chdir(job.cwd)
    threads = job.cfg.cell_threads
    torch.set_num_threads(threads)
    cell = dataclasses.replace(job.cell, config=job.cell.config.replace(
        **{"run.threads": threads}))  # fmt: skip
    cfg = dataclasses.replace(job.cfg, threads=threads)
    return work_on_cell(cell, cfg, job.out, job.state, job.command)


def run_parallel(
    cells: Sequence[Cell],
    cfg: BenchConfig,
    out: Path,
    results: dict[str, dict[str, Any]],
    command: Sequence[str],
    log: Log,
) -> int:
    """Every cell of the matrix on Ray (Ray connected: :func:`bench_ray`); 0, or 130
    when stopped (Ctrl-C, or a search stopped in its task)."""
    from prunegym.agents.ray_cluster import map_tasks

    done, jobs = 0, []
    for cell in cells:
        state = cell_state(cell, out, cfg)
        if state == DONE:
            row, action = finished_row(cell, out, results.get(cell.key))
            record_row(out, cells, results, row)
            done += 1
            log(progress_line(done, len(cells), row, action))
        else:
            jobs.append(CellJob(cell, state, cfg, out.resolve(), tuple(command), os.getcwd()))
    for job in jobs:  # each workload's dense model, trained once here, before any task
        ensure_dense(job.cell.workload, log)
    status = 0
    resources = cfg.resources_per_cell
    tasks = map_tasks(run_cell_job, jobs, num_cpus=cfg.cell_cpus,
                      num_gpus=float(resources.get("num_gpus", 0.0)))  # fmt: skip
    try:
        with contextlib.closing(tasks):
            for i, (found, action) in tasks:
                done += 1
                if found is None:  # its search was stopped: checkpoint saved
                    log(f"[{done}/{len(cells)}] {jobs[i].cell.key}: stopped; checkpoint "
                        "saved, rerun the same command to continue")  # fmt: skip
                    status = exit_status(signal.SIGINT)
                    continue
                record_row(out, cells, results, found)
                log(progress_line(done, len(cells), found, action))
    except KeyboardInterrupt as exc:  # Ctrl-C: the running searches saved checkpoints
        log(f"stopped with {len(cells) - done} cell(s) unfinished; checkpoints saved, "
            "rerun the same command to continue")  # fmt: skip
        return exit_status(getattr(exc, "signum", signal.SIGINT))
    return status
