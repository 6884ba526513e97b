"""``prunegym transfer``: use what a search learned on one model for another model.

``prunegym transfer --from RUN_DIR --config TARGET.yaml --out DIR [--episodes K]
[--mode agent|profile] [--set key=value ...]`` writes an ordinary search run directory
(``prunegym export``, ``report`` and ``search --resume`` work on it) for the target
config's workload and env, whose searcher is

- ``agent`` (default): the source run's agent (``agent.zip`` and ``agent.json``),
  checked against the target game before anything is evaluated; episode 0 is its
  zero-shot policy, episodes 1..K fine-tune it (:mod:`prunegym.agents.transfer`);
- ``profile``: the source's best policy mapped onto the target's units and scaled to
  its budget, one evaluation (:mod:`prunegym.agents.profile`).

The run directory also holds ``transfer.json`` (source, checks, what differs, the
zero-shot metrics). The target config's own ``search`` section is replaced; ``--set
search.options.noise_sigma=0.05`` (and ``noise_decay``, ``replay_episodes``,
``warmup_episodes``) tune the fine-tuning. Agent files are cloudpickle (SB3's format):
use only trusted sources.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prunegym.experiments.arguments import TRUSTED_SOURCE_NOTE, int_at_least
from prunegym.experiments.commands import Command
from prunegym.experiments.config import (
    Config,
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
)
from prunegym.experiments.rundir import MODES
from prunegym.experiments.schedule_plan import refuse_schedule


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        type=Path,
        metavar="RUN_DIR",
        help="the source: a search run directory (or an agent.zip, --mode agent)",
    )
    p.add_argument(
        "--config",
        required=True,
        type=Path,
        help="the target's config (its workload and env; its search is replaced)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the target config (repeatable)",
    )
    p.add_argument(
        "--episodes",
        type=int_at_least(0),
        default=0,
        metavar="K",
        help="fine-tune episodes after the zero-shot one (0: zero-shot only)",
    )
    p.add_argument(
        "--mode",
        choices=tuple(MODES),
        default="agent",
        help="agent: the source's agent; profile: its best policy's shape",
    )
    p.add_argument("--out", required=True, type=Path, help="the new run directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")  # fmt: skip


def transfer_config(
    target: Path, source: Path, mode: str, episodes: int, overrides: list[str] | tuple[str, ...]
) -> Config:
    """The target config with its search replaced by the transfer (``overrides`` last)."""
    if mode == "profile" and episodes:
        raise ConfigError("a profile transfer evaluates one policy: --episodes applies "
                          "to --mode agent")  # fmt: skip
    data = load_config(target).to_dict()
    data["search"] = {"agent": MODES[mode], "episodes": episodes + 1,
                      "options": {"source": str(source.resolve())}}  # fmt: skip
    cfg = from_dict(apply_overrides(data, overrides))
    if (cfg.search.agent, cfg.search.episodes) != (MODES[mode], episodes + 1):
        raise ConfigError("set the searcher with --mode and its length with --episodes, "
                          "not search.agent or search.episodes")  # fmt: skip
    return cfg


def _check_source(source: Path, mode: str) -> None:
    """Errors found before anything is built: a missing or unreadable source."""
    if mode == "agent":
        from prunegym.agents.metadata import read_metadata

        read_metadata(source)
    else:
        from prunegym.agents.profile import read_profile

        read_profile(source)


def _run(args: argparse.Namespace) -> int:
    from prunegym.experiments.search import check_config, run_search

    overrides = [*args.overrides, *(["run.progress=false"] if args.no_progress else [])]
    cfg = transfer_config(args.config, args.source, args.mode, args.episodes, overrides)
    refuse_schedule(cfg, "transfer")
    check_config(cfg)
    _check_source(args.source, args.mode)
    outcome = run_search(cfg, args.out, command=getattr(args, "argv", sys.argv))
    result = outcome.result
    if outcome.status == "interrupted":
        print(f"prunegym: interrupted after {result.episodes}/{cfg.search.episodes} episodes; "
              f"checkpoint saved. Continue with: prunegym search --resume {args.out}",
              file=sys.stderr)  # fmt: skip
        return 130
    zero, best = result.history[0], result.best
    trained_on = ""
    if args.mode == "agent":
        from prunegym.agents.metadata import describe_sources

        trained_on = f" (trained on {describe_sources(result.source)})"
    print(f"{args.mode} transfer from {args.source}{trained_on}: zero-shot reward "
          f"{zero.reward:.4g} ({_metrics(zero)})")  # fmt: skip
    if len(result.history) > 1:
        print(f"after {len(result.history) - 1} fine-tune episodes: best reward "
              f"{best.reward:.4g} ({_metrics(best)}, episode {best.episode})")  # fmt: skip
    for line in getattr(result, "differences", []):
        print(f"differs from the source: {line}")
    print(f"-> {args.out}")
    return 0


def _metrics(record: Any) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in record.metrics.items())


COMMAND = Command(
    name="transfer",
    help="use a search's agent (zero-shot, then K fine-tune episodes) or its best policy's "
    "profile on another model; writes a search run directory plus transfer.json",
    configure=_configure,
    run=_run,
    epilog=TRUSTED_SOURCE_NOTE,
)
