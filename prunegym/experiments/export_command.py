"""``prunegym export RUN_DIR [--epochs N] [--train-samples N] ...``: the command line of
:func:`~prunegym.experiments.export.export_run` (``run`` shares its arguments)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prunegym.experiments.arguments import TRUSTED_SOURCE_NOTE
from prunegym.experiments.commands import Command, print_phase
from prunegym.experiments.config import ConfigError
from prunegym.experiments.export import ExportOptions, export_run
from prunegym.experiments.report import print_summary

__all__ = ["COMMAND", "add_export_arguments", "export_options"]


def add_export_arguments(p: argparse.ArgumentParser, progress_flag: bool = True) -> None:
    """The arguments of ``export`` (``run`` and ``demo`` share them)."""
    d = ExportOptions()
    p.add_argument("--epochs", type=int, default=d.epochs, help="fine-tuning epochs (0: none)")
    p.add_argument("--distill", action="store_true", help="distil from the dense model")
    p.add_argument("--temperature", type=float, default=d.temperature, help="distillation T")
    p.add_argument("--lr", type=float, default=None,
                   help="fine-tuning learning rate (default: 0.01, SGD)")  # fmt: skip
    p.add_argument(
        "--latency-batch", type=int, default=d.latency_batch,
        help="the larger batch size of the latency figures (batch 1 is always timed)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for latency (default: torch's setting)")  # fmt: skip
    p.add_argument("--device", default=d.device, help="fine-tuning device: auto, cpu, cuda")
    p.add_argument(
        "--train-samples",
        type=int,
        default=None,
        metavar="N",
        help="fine-tune on N training samples, a seeded subset (default: all)",
    )
    if progress_flag:
        p.add_argument("--no-progress", action="store_true", help="no progress bars")


def export_options(args: argparse.Namespace) -> ExportOptions:
    """:class:`ExportOptions` from :func:`add_export_arguments`'s arguments."""
    if args.epochs < 0:
        raise ConfigError(f"--epochs must be >= 0, got {args.epochs}")
    if args.latency_batch < 1 or (args.threads is not None and args.threads < 1):
        raise ConfigError("--latency-batch and --threads must be >= 1")
    samples = getattr(args, "train_samples", None)
    if samples is not None and samples < 1:
        raise ConfigError(f"--train-samples must be >= 1, got {samples}")
    return ExportOptions(epochs=args.epochs, distill=args.distill, temperature=args.temperature,
                         lr=args.lr, latency_batch=args.latency_batch, threads=args.threads,
                         device=args.device, train_samples=samples,
                         progress=not args.no_progress)  # fmt: skip


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory written by prunegym search")
    add_export_arguments(p)


def _run(args: argparse.Namespace) -> int:
    opts = export_options(args)
    metrics = export_run(args.run_dir, opts, command=getattr(args, "argv", sys.argv),
                         log=print_phase)  # fmt: skip
    print_summary(metrics, args.run_dir)
    return 0


COMMAND = Command(
    name="export",
    help="apply a run's best policy for real, recalibrate, fine-tune, evaluate, time, save, "
    "ONNX (with prunegym[onnx]), report",
    configure=_configure,
    run=_run,
    epilog=TRUSTED_SOURCE_NOTE,
)
