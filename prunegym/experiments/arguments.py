"""Command-line arguments shared by several commands, in one place.

``search`` and ``run`` take the same config arguments (``--config``, ``--set``, ``--out``,
``--resume``, ``--no-progress``); :func:`resolve_search_config` turns them into the
config, the run directory and whether it resumes. Every parser shows its defaults in
``--help`` through :class:`HelpFormatter`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prunegym.experiments.config import (
    Config,
    ConfigError,
    config_differences,
    flat_dict,
    load_config,
)
from prunegym.experiments.rundir import CONFIG_FILE, RESUMABLE_KEYS

__all__ = [
    "TRUSTED_SOURCE_NOTE",
    "HelpFormatter",
    "add_search_arguments",
    "non_negative_float",
    "positive_int",
    "resolve_search_config",
]

#: Said by ``--help`` of every command that loads an agent or a run directory.
TRUSTED_SOURCE_NOTE = (
    "Agent files (agent.zip: SB3's cloudpickle format) and run directories can run code "
    "when loaded: use only those from a trusted source."
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to every option that has a default worth showing (not
    ``None``, ``False`` or an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        # identity, not ==: a default of 0 or 0.0 is worth showing, False and None are not
        if default is argparse.SUPPRESS or default is None or default is False or default == []:
            return action.help or ""
        return super()._get_help_string(action) or ""


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)  # argparse type: an integer >= 1


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """The config arguments of ``search`` and ``run``."""
    p.add_argument("--config", type=Path, help="YAML config file (see configs/)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set search.episodes=50 (repeatable); "
        "--set search.agent=NAME drops the config file's search.options, which belong "
        "to the agent it names",
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="run directory (default: run.out of the config)")
    p.add_argument(
        "--resume", type=Path, metavar="RUN_DIR",
        help="continue the search saved in RUN_DIR (with its saved config)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_search_config(args: argparse.Namespace, command: str = "search") -> tuple[
    Config, Path, bool, list[str]
]:  # fmt: skip
    """The config, run directory, resume flag and notes for the user (e.g. options
    dropped by a switch of agent) from :func:`add_search_arguments`'s arguments
    (``--resume`` checks that the config matches the saved one)."""
    notes: list[str] = []
    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("run.progress=false")
    if args.resume is not None:
        run_dir = Path(args.resume)
        saved_path = run_dir / CONFIG_FILE
        if not saved_path.is_file():
            raise ConfigError(f"{run_dir} is not a search run directory (no {CONFIG_FILE})")
        saved = load_config(saved_path)
        source = args.config if args.config is not None else saved_path
        wanted = load_config(source, overrides, notes=notes)
        diff = config_differences(saved, wanted, ignore=RESUMABLE_KEYS)
        if diff:
            there: Any = flat_dict(saved.to_dict()).get(diff[0])
            here: Any = flat_dict(wanted.to_dict()).get(diff[0])
            raise ConfigError(f"{run_dir} was made with another config ({diff[0]} differs: "
                              f"{there!r} there, {here!r} here)")  # fmt: skip
        if args.out is not None and Path(args.out) != run_dir:
            raise ConfigError("--out and --resume name different run directories")
        return wanted, run_dir, True, notes
    if args.config is None:
        raise ConfigError(f"prunegym {command} needs --config FILE.yaml (or --resume RUN_DIR)")
    cfg = load_config(args.config, overrides, notes=notes)
    out = args.out if args.out is not None else cfg.run.out
    if out is None:
        raise ConfigError("no run directory: pass --out DIR or set run.out in the config")
    return cfg, Path(out), False, notes
