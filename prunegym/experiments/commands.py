"""The registry of ``prunegym`` subcommands.

A subcommand is a module with a ``COMMAND`` attribute (a :class:`Command`); ``COMMANDS``
maps each name to its module, which the command line imports only when it builds its
parser. Command modules import this module, never ``cli``, so there is no import cycle
between the command line and the commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "load_command", "print_phase"]


@dataclass(frozen=True)
class Command:
    """One subcommand: ``configure`` adds its arguments, ``run`` does the work (exit status)."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    epilog: str | None = None


#: Subcommand name -> the module whose ``COMMAND`` it is (imported on first use).
COMMANDS: dict[str, str] = {
    "train": "prunegym.experiments.train_command",
    "search": "prunegym.experiments.search",
    "export": "prunegym.experiments.export_command",
    "run": "prunegym.experiments.run",
    "report": "prunegym.experiments.report",
    "demo": "prunegym.experiments.demo",
    "bench": "prunegym.experiments.bench.command",
    "transfer": "prunegym.experiments.transfer_command",
}


def load_command(name: str) -> Command:
    """The :class:`Command` registered as ``name`` (imports its module)."""
    command = importlib.import_module(COMMANDS[name]).COMMAND  # the fixed registry above
    if not isinstance(command, Command) or command.name != name:
        raise TypeError(f"{COMMANDS[name]}.COMMAND is not the {name!r} command")
    return command


def print_phase(message: str) -> None:
    """One line per phase of a long command on stderr (shown with ``--no-progress`` too)."""
    print(f"prunegym: {message}", file=sys.stderr, flush=True)
