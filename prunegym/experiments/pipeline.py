"""One search-then-export run in one run directory: what ``prunegym run`` does, and each
step of a schedule (:mod:`prunegym.experiments.schedule`).

The run directory's lock is held from the first check to the end of the export.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prunegym.experiments.config import Config
from prunegym.experiments.export import ExportOptions, export_run
from prunegym.experiments.rundir import open_run_dir
from prunegym.experiments.workload import check_config

__all__ = ["SearchInterrupted", "run_pipeline"]


class SearchInterrupted(Exception):
    """The search stopped early (Ctrl-C or SIGTERM); its checkpoint is saved."""

    def __init__(self, signum: int | None) -> None:
        super().__init__("the search was interrupted")
        self.signum = signum


def run_pipeline(
    cfg: Config,
    run_dir: Path,
    options: ExportOptions,
    command: Sequence[str] = (),
    resume: bool = False,
    log: Callable[[str], None] | None = None,
    notes: Sequence[str] = (),
    extra_callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Search (training the dense model first when the config asks) and export the best;
    returns the export's metrics. Raises :class:`SearchInterrupted` on an early stop.
    ``extra_callbacks`` go to the search (search callbacks)."""
    from prunegym.experiments.search import run_search

    check_config(cfg)
    with open_run_dir(Path(run_dir), resume):
        outcome = run_search(cfg, run_dir, command=command, resume=resume, log=log, notes=notes,
                             extra_callbacks=extra_callbacks)  # fmt: skip
        if outcome.status != "completed":
            raise SearchInterrupted(outcome.signum)
        return export_run(run_dir, options, command=command, log=log)
