"""``prunegym demo``: the whole job on an embedded default, with nothing to download.

Trains the small CNN on scikit-learn's handwritten digits (shipped inside
scikit-learn), lets DDPG with AMC's settings search per-unit channel sparsities under a
50% MACs budget, applies the best policy for real, fine-tunes, and prints the
before/after table with where the run directory, TensorBoard logs and plots are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prunegym.experiments.commands import Command
from prunegym.experiments.config import ConfigError, from_dict
from prunegym.experiments.export import ExportOptions

DEMO_CONFIG: dict[str, Any] = {
    "seed": 0,
    "workload": {"model": "smallcnn", "dataset": "digits", "train_epochs": 15, "train_seed": 0},
    "env": {"target": "macs", "ratio": 0.5, "min_sparsity": 0.0, "max_sparsity": 0.8,
            "importance": "l1", "evaluator": {"bn_recalibration": True}},
    "search": {"agent": "ddpg", "episodes": 100, "options": {"warmup_episodes": 25}},
    "run": {"checkpoint_every": 10, "tensorboard": True, "progress": True},
}  # fmt: skip


def fresh_dir(base: Path) -> Path:
    """``base`` if it is free, else ``base-2``, ``base-3``, ..."""
    if not base.exists():
        return base
    i = 2
    while base.with_name(f"{base.name}-{i}").exists():
        i += 1
    return base.with_name(f"{base.name}-{i}")


def demo_config(episodes: int, warmup: int, train_epochs: int, seed: int, progress: bool) -> Any:
    if episodes < 1 or train_epochs < 1 or warmup < 0:
        raise ConfigError("--episodes and --train-epochs must be >= 1, --warmup >= 0")
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in DEMO_CONFIG.items()}
    data["seed"] = seed
    data["workload"]["train_epochs"] = train_epochs
    data["search"] = {**data["search"], "episodes": episodes,
                      "options": {"warmup_episodes": min(warmup, episodes)}}  # fmt: skip
    data["run"]["progress"] = progress
    return from_dict(data)


def _configure(p: argparse.ArgumentParser) -> None:
    d = DEMO_CONFIG
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        help="run directory (a fresh -N suffix is added when it exists)",
    )
    p.add_argument("--episodes", type=int, default=d["search"]["episodes"], help="search episodes")
    p.add_argument(
        "--warmup",
        type=int,
        default=d["search"]["options"]["warmup_episodes"],
        help="DDPG warm-up episodes of uniform random actions",
    )
    p.add_argument(
        "--train-epochs",
        type=int,
        default=d["workload"]["train_epochs"],
        help="epochs to train the dense CNN",
    )
    p.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs of the pruned CNN")
    p.add_argument("--seed", type=int, default=0, help="seed of training, search and fine-tuning")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    from prunegym.experiments.run import run_and_print

    progress = not args.no_progress
    cfg = demo_config(args.episodes, args.warmup, args.train_epochs, args.seed, progress)
    if args.epochs < 0:
        raise ConfigError(f"--epochs must be >= 0, got {args.epochs}")
    run_dir = fresh_dir(args.out)
    run_dir.parent.mkdir(parents=True, exist_ok=True)  # an unwritable place fails now
    opts = ExportOptions(epochs=args.epochs, latency_batch=64, progress=progress, seed=args.seed)
    print(f"prunegym demo: smallcnn on digits, {cfg.search.agent} search at "
          f"{cfg.env.target} <= {cfg.env.ratio:g}, {cfg.search.episodes} episodes -> {run_dir}",
          flush=True)  # fmt: skip
    return run_and_print(cfg, run_dir, opts, getattr(args, "argv", sys.argv))


COMMAND = Command(
    name="demo",
    help="train a small CNN on digits, search with DDPG, prune for real, fine-tune, report",
    configure=_configure,
    run=_run,
)
