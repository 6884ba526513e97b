"""``prunegym bench --config BENCH.yaml [--set key=value] --out DIR``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from prunegym.experiments.commands import Command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True,
                   help="bench YAML file (see configs/bench-*.yaml)")  # fmt: skip
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a bench key, e.g. --set 'bench.seeds=[0]' (repeatable)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True,
                   help="bench directory; rerunning with the same one skips finished cells "
                   "and continues cut ones")  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    from prunegym.experiments.bench.config import load_bench_config
    from prunegym.experiments.bench.runner import run_bench

    cfg = load_bench_config(args.config, args.overrides)
    argv = list(getattr(args, "argv", sys.argv))
    status = run_bench(cfg, args.out, command=argv, regenerate=shlex.join(argv),
                       log=lambda line: print(line, flush=True))  # fmt: skip
    if status == 0:
        print(f"bench finished: {args.out}/results.jsonl, summary.md, pareto.png, curves.png")
    return status


COMMAND = Command(
    name="bench",
    help="a matrix of searches (workloads x targets x ratios x searchers x seeds), each "
    "fine-tuned and tested; writes results.jsonl, summary.md and plots (resumable)",
    configure=_configure,
    run=_run,
)
