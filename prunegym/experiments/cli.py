"""The ``prunegym`` command line.

Each subcommand is a :class:`~prunegym.experiments.commands.Command` in a module that
:data:`~prunegym.experiments.commands.COMMANDS` names; a new subcommand is a new module
plus one line there. Every expected user error (bad argument, unknown model, missing
dataset, unwritable output, a run directory in use, ...) ends with ONE line
``prunegym: error: ...`` on stderr and exit status 2, never a traceback; ``--debug`` (or
``PRUNEGYM_DEBUG=1``) prints the traceback above that line. SIGTERM is handled like
Ctrl-C: a search checkpoints and the command exits with status 143.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from prunegym.experiments.arguments import HelpFormatter
from prunegym.experiments.commands import COMMANDS, load_command
from prunegym.experiments.signals import exit_status, sigterm_as_interrupt

__all__ = ["COMMANDS", "PROG", "UsageError", "build_parser", "main"]

PROG = "prunegym"
DEBUG_ENV = "PRUNEGYM_DEBUG"


class UsageError(Exception):
    """A command-line mistake (argparse's or ours): one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so main() owns the output."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _add_debug(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("--debug", action="store_true", default=default,
                   help=f"show the traceback behind an error (or set {DEBUG_ENV}=1)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    from prunegym import __version__

    parser = _Parser(
        prog=PROG,
        description="Reinforcement-learning search for per-layer pruning of PyTorch networks.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_debug(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        command = load_command(name)
        p = sub.add_parser(name, help=command.help, description=command.help,
                           epilog=command.epilog, formatter_class=HelpFormatter)  # fmt: skip
        command.configure(p)
        _add_debug(p, argparse.SUPPRESS)  # after the command: `prunegym search ... --debug`
        p.set_defaults(_run=command.run)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _fail(message: str, debug: bool = False) -> int:
    if debug:
        traceback.print_exc()
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _debug_requested(args: argparse.Namespace | None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:  # fmt: skip
    """A warning on the command line: one line, no source location."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``prunegym`` command line; returns the exit status."""
    args = None
    try:
        with sigterm_as_interrupt(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            parser = build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:  # --help and --version print and exit 0
                return exc.code if isinstance(exc.code, int) else 0
            if args.command is None:
                raise UsageError(
                    f"a command is required: {', '.join(COMMANDS)} (see '{PROG} --help')"
                )
            args.argv = [PROG, *(sys.argv[1:] if argv is None else argv)]
            return int(args._run(args))
    except UsageError as exc:
        return _fail(str(exc), _debug_requested(args))
    except (ValueError, OSError) as exc:  # includes FileNotFoundError, PermissionError
        return _fail(_one_line(exc), _debug_requested(args))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated) outside a search
        if _debug_requested(args):
            traceback.print_exc()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return exit_status(getattr(exc, "signum", signal.SIGINT))
