"""``prunegym export DIR``: the shipped model of a search run directory, or of a schedule.

A run directory (``prunegym search``, ``run``, ``transfer``): its best policy applied
for real, recalibrated, fine-tuned, evaluated, timed and saved in ``DIR/export``
(:func:`~prunegym.experiments.export.export_run`). A schedule's directory (``prunegym
run`` with ``run.schedule``): its final step exported again with these options, the
schedule's ``export/`` (final model, trajectory report) rewritten from it
(:func:`~prunegym.experiments.schedule.export_schedule`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prunegym.experiments.arguments import TRUSTED_SOURCE_NOTE
from prunegym.experiments.commands import Command, print_phase
from prunegym.experiments.export import add_export_arguments, export_options, export_run
from prunegym.experiments.report import print_summary
from prunegym.experiments.rundir import is_schedule_dir

__all__ = ["COMMAND"]


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run_dir",
        type=Path,
        help="a run directory (prunegym search, run, transfer) or a schedule's directory "
        "(prunegym run with run.schedule: its final step is exported)",
    )
    add_export_arguments(p)


def _run(args: argparse.Namespace) -> int:
    opts = export_options(args)
    command = getattr(args, "argv", sys.argv)
    if is_schedule_dir(args.run_dir):
        from prunegym.experiments.schedule import export_schedule
        from prunegym.experiments.schedule_report import print_schedule_summary

        metrics = export_schedule(args.run_dir, opts, command=command, log=print_phase)
        print_schedule_summary(metrics, args.run_dir)
        return 0
    metrics = export_run(args.run_dir, opts, command=command, log=print_phase)
    print_summary(metrics, args.run_dir)
    return 0


COMMAND = Command(
    name="export",
    help="apply a run's best policy for real, recalibrate, fine-tune, evaluate, time, save, "
    "ONNX (with prunegym[onnx]), report; on a schedule's directory, its final step",
    configure=_configure,
    run=_run,
    epilog=TRUSTED_SOURCE_NOTE,
)
