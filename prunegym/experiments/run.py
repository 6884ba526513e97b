"""``prunegym run --config FILE``: train if needed, search, then export, in one go
(:func:`~prunegym.experiments.pipeline.run_pipeline`). With
``run.schedule`` set (``--set run.schedule=[0.7,0.5,0.3]``) it prunes iteratively, one
search, apply and fine-tune per budget (:mod:`prunegym.experiments.schedule`);
``--resume OUT`` continues an interrupted schedule in the step where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from prunegym.experiments.arguments import (
    TRUSTED_SOURCE_NOTE,
    add_search_arguments,
    resolve_search_config,
)
from prunegym.experiments.commands import Command, print_phase
from prunegym.experiments.config import Config
from prunegym.experiments.export import ExportOptions
from prunegym.experiments.export_command import add_export_arguments, export_options
from prunegym.experiments.pipeline import SearchInterrupted, run_pipeline
from prunegym.experiments.report import print_summary
from prunegym.experiments.rundir import CHECKPOINT_FILE
from prunegym.experiments.signals import exit_status
from prunegym.experiments.workload import check_config

__all__ = ["COMMAND", "SearchInterrupted", "run_and_print", "run_pipeline", "schedule_and_print"]


def run_and_print(
    cfg: Config, run_dir: Path, options: ExportOptions, command: Sequence[str],
    resume: bool = False, notes: Sequence[str] = (),
) -> int:  # fmt: skip
    """:func:`run_pipeline` with one line per phase, then the before/after table; the
    exit status."""
    import signal

    try:
        metrics = run_pipeline(cfg, run_dir, options, command=command, resume=resume,
                               log=print_phase, notes=notes)  # fmt: skip
    except (SearchInterrupted, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", None) or signal.SIGINT
        hint = (f"; continue with: prunegym run --resume {run_dir}"
                if (Path(run_dir) / CHECKPOINT_FILE).is_file() else "")  # fmt: skip
        print(f"prunegym: interrupted{hint}", file=sys.stderr)
        return exit_status(signum)
    print()
    print_summary(metrics, run_dir)
    return 0


def schedule_and_print(
    cfg: Config, out: Path, options: ExportOptions, command: Sequence[str],
    resume: bool = False, notes: Sequence[str] = (),
) -> int:  # fmt: skip
    """:func:`~prunegym.experiments.schedule.run_schedule` with one line per phase, then
    the trajectory; the exit status."""
    import signal

    from prunegym.experiments.schedule import run_schedule
    from prunegym.experiments.schedule_report import print_schedule_summary

    try:
        metrics = run_schedule(cfg, out, options, command=command, resume=resume,
                               log=print_phase, notes=notes)  # fmt: skip
    except (SearchInterrupted, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", None) or signal.SIGINT
        hint = f"; continue with: prunegym run --resume {out}" if Path(out).is_dir() else ""
        print(f"prunegym: interrupted{hint}", file=sys.stderr)
        return exit_status(signum)
    print()
    print_schedule_summary(metrics, Path(out))
    return 0


def _configure(p: argparse.ArgumentParser) -> None:
    add_search_arguments(p)
    add_export_arguments(p, progress_flag=False)


def _run(args: argparse.Namespace) -> int:
    cfg, run_dir, resume, notes = resolve_search_config(args, "run")
    check_config(cfg)
    opts = export_options(args)
    command = getattr(args, "argv", sys.argv)
    if cfg.run.schedule is not None:
        return schedule_and_print(cfg, run_dir, opts, command, resume=resume, notes=notes)
    return run_and_print(cfg, run_dir, opts, command, resume=resume, notes=notes)


COMMAND = Command(
    name="run",
    help="train if needed, search, apply the best policy for real, fine-tune, export, report "
    "(with run.schedule: once per budget, each step on the previous step's network)",
    configure=_configure,
    run=_run,
    epilog=TRUSTED_SOURCE_NOTE,
)
