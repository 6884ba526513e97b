"""``prunegym run --config FILE``: train if needed, search, then export, in one go."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prunegym.experiments.cli import Command
from prunegym.experiments.config import Config
from prunegym.experiments.export import (
    ExportOptions,
    add_export_arguments,
    export_options,
    export_run,
    print_summary,
)


def run_pipeline(
    cfg: Config,
    run_dir: Path,
    options: ExportOptions,
    command: list[str] | tuple[str, ...] = (),
    resume: bool = False,
) -> dict:
    """Search (training the dense model first when the config asks) and export the best."""
    from prunegym.experiments.search import run_search

    outcome = run_search(cfg, run_dir, command=command, resume=resume)
    if outcome.status != "completed":
        raise KeyboardInterrupt
    return export_run(run_dir, options, command=command)


def run_and_print(
    cfg: Config, run_dir: Path, options: ExportOptions, command: list[str], resume: bool = False
) -> int:
    """:func:`run_pipeline`, then the before/after table; the exit status."""
    try:
        metrics = run_pipeline(cfg, run_dir, options, command=command, resume=resume)
    except KeyboardInterrupt:
        print(f"prunegym: interrupted; continue with: prunegym run --resume {run_dir}",
              file=sys.stderr)  # fmt: skip
        return 130
    print()
    print_summary(metrics, run_dir)
    return 0


def _configure(p: argparse.ArgumentParser) -> None:
    from prunegym.experiments.search import _configure as configure_search

    configure_search(p)
    add_export_arguments(p, progress_flag=False)


def _run(args: argparse.Namespace) -> int:
    from prunegym.experiments.search import check_config, resolve_cli_config

    cfg, run_dir, resume = resolve_cli_config(args)
    check_config(cfg)
    opts = export_options(args)
    return run_and_print(cfg, run_dir, opts, getattr(args, "argv", sys.argv), resume=resume)


RUN = Command(
    name="run",
    help="train if needed, search, apply the best policy for real, fine-tune, export, report",
    configure=_configure,
    run=_run,
)
