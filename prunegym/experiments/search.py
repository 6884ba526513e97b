"""``prunegym search``: run a searcher on a workload and keep everything in a run directory.

Run directory::

    config.yaml        the resolved config (every default filled in)
    run.json           command line(s), prunegym/torch/SB3 versions, start and resume times
    tb/                TensorBoard: per-episode reward, its terms, metrics, seconds,
                       per-unit sparsities (scalars and histograms), hparams
    history.csv        one row per evaluated episode (sparsities, metrics, reward, seconds)
    best_policy.json   the best PruningPolicy so far (rewritten when it improves)
    agent.zip          the SB3 agent (RL searchers), written at the end
    checkpoint.zip     the searcher's whole state (agent, replay buffer, history, RNGs)
    base_model.pt      the dense model, when the run trained it (export prunes this one)
    summary.json       best reward and metrics, episodes, seconds per episode, status

Every file is written atomically (temporary file + rename), so an interrupted or failed
run never leaves a half-written file; a run that fails before its first episode leaves
no directory at all. ``--resume RUN_DIR`` continues from ``checkpoint.zip`` with the
saved config and loses no completed episode; Ctrl-C stops at the next episode boundary,
saves a checkpoint and exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunegym.experiments.cli import Command
from prunegym.experiments.config import Config, ConfigError, load_config

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.zip"
BASE_MODEL_FILE = "base_model.pt"  # the dense model, when the run trained it
#: Keys that may differ between a run and its resumption.
RESUMABLE_KEYS = ("search.episodes", "run.progress", "run.out", "run.threads")


@dataclass
class SearchRun:
    """What :func:`run_search` produced."""

    run_dir: Path
    result: Any  # prunegym.agents.SearchResult
    status: str  # "completed" | "interrupted"
    seconds: float


# ------------------------------------------------------------------------------ workload
def build_workload(cfg: Config, progress: bool = False) -> tuple[Any, Any]:
    """The trained model (eval mode) and its data splits."""
    from prunegym.experiments.data import build_data, build_data_like

    w = cfg.workload
    if w.checkpoint is not None:
        from prunegym.experiments.checkpoint import load_checkpoint

        ckpt = load_checkpoint(w.checkpoint)
        model = ckpt.build_model()
        if not ckpt.metadata.get("dataset"):
            raise ConfigError(f"{w.checkpoint} records no dataset; cannot rebuild its splits")
        data = build_data_like(ckpt.metadata["dataset"], w.data_dir)
        return model, data
    if w.model is None:
        raise ConfigError("workload needs a checkpoint (model.pt) or a model to train")
    if w.train_epochs < 1:
        raise ConfigError("workload.model without workload.checkpoint needs train_epochs >= 1")
    import torch

    from prunegym.experiments.models import build_model, check_model_name
    from prunegym.experiments.training import train

    check_model_name(w.model)
    data = build_data(w.dataset, w.reward_val_size, w.split_seed, w.data_dir)
    torch.manual_seed(w.train_seed)
    model = build_model(w.model, data.in_channels, data.num_classes)
    train(model, data, w.train_epochs, seed=w.train_seed, progress=progress)
    return model.eval(), data


def build_env(cfg: Config, model: Any, data: Any) -> Any:
    from prunegym.envs import make_pruning_env

    e = cfg.env
    return make_pruning_env(
        model, data, granularity=e.granularity, target=e.target, ratio=e.ratio,
        min_sparsity=e.min_sparsity, max_sparsity=e.max_sparsity, importance=e.importance,
        round_to=e.round_to, reward=e.reward, reward_weights=dict(e.reward_weights) or None,
        evaluator_options=dict(e.evaluator) or None, reconstruction=e.reconstruction,
        device=e.device, seed=cfg.seed,
    )  # fmt: skip


def check_config(cfg: Config) -> None:
    """Errors that need no model or data, found before anything is built or written."""
    from prunegym.agents import SEARCHERS

    if cfg.search.agent not in SEARCHERS:
        raise ConfigError(
            f"unknown agent {cfg.search.agent!r} (search.agent); known: {', '.join(SEARCHERS)}"
        )
    if cfg.search.episodes < 1:
        raise ConfigError(f"search.episodes must be >= 1, got {cfg.search.episodes}")
    if cfg.run.checkpoint_every < 1:
        raise ConfigError(f"run.checkpoint_every must be >= 1, got {cfg.run.checkpoint_every}")
    if cfg.run.threads is not None and cfg.run.threads < 1:
        raise ConfigError(f"run.threads must be >= 1, got {cfg.run.threads}")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(a: Config, b: Config, ignore: Sequence[str] = RESUMABLE_KEYS) -> list[str]:
    fa, fb = _flat(a.to_dict()), _flat(b.to_dict())
    keys = sorted(set(fa) | set(fb))
    return [k for k in keys if fa.get(k) != fb.get(k) and not any(
        k == i or k.startswith(i + ".") for i in ignore)]  # fmt: skip


# ------------------------------------------------------------------------------ run files
def _write_json(path: Path, obj: Any) -> None:
    from prunegym.utils.files import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _versions() -> dict[str, str]:
    import stable_baselines3
    import torch

    from prunegym import __version__

    return {"prunegym": __version__, "torch": str(torch.__version__),
            "stable_baselines3": stable_baselines3.__version__}  # fmt: skip


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class _RunFiles:
    """history.csv at every safe point (after the checkpoint callback ran)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.written = -1

    def on_search_start(self, searcher: Any) -> None:
        pass

    def on_episode(self, searcher: Any, record: Any) -> None:
        pass

    def on_safe_point(self, searcher: Any) -> None:
        if len(searcher.history) != self.written:
            searcher.result().to_csv(self.run_dir / "history.csv")
            self.written = len(searcher.history)

    def on_search_end(self, searcher: Any, result: Any) -> None:
        result.to_csv(self.run_dir / "history.csv")


@contextlib.contextmanager
def _graceful_sigint(searcher: Any):
    """First Ctrl-C: stop at the next episode boundary (checkpoint saved); second: abort."""
    if threading_main() is False:
        yield
        return
    state = {"hits": 0}

    def handler(signum, frame):
        state["hits"] += 1
        if state["hits"] > 1:
            raise KeyboardInterrupt
        searcher.request_stop()
        print("\nprunegym: stopping after this episode and saving a checkpoint "
              "(Ctrl-C again to abort)", file=sys.stderr)  # fmt: skip

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run_search(
    cfg: Config,
    run_dir: str | os.PathLike,
    *,
    command: Sequence[str] = (),
    resume: bool = False,
    extra_callbacks: Sequence[Any] = (),
) -> SearchRun:
    """Run (or, with ``resume``, continue) the search ``cfg`` describes in ``run_dir``."""
    import torch

    from prunegym.agents import (
        BestPolicyCallback,
        CheckpointCallback,
        ProgressBarCallback,
        RLSearcher,
        TensorBoardCallback,
        make_searcher,
    )

    run_dir = Path(run_dir)
    check_config(cfg)
    ckpt_path = run_dir / CHECKPOINT_FILE
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"{run_dir} is not a search run directory (no {CONFIG_FILE})")
        if not ckpt_path.is_file():
            raise ConfigError(f"{run_dir} has no {CHECKPOINT_FILE} to resume from")
    elif run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError(f"run directory {run_dir} already exists; use --resume {run_dir} "
                          "to continue it or choose another --out")  # fmt: skip
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)

    base_path = run_dir / BASE_MODEL_FILE
    trained_here = cfg.workload.checkpoint is None
    if resume and trained_here and base_path.is_file():  # the dense model this run trained
        model, data = build_workload(cfg.replace(**{"workload.checkpoint": str(base_path)}))
    else:
        model, data = build_workload(cfg, progress=cfg.run.progress)
    env = build_env(cfg, model, data)
    options = dict(cfg.search.options)
    if cfg.search.agent in ("ddpg", "td3", "sac", "ppo"):
        options.setdefault("tensorboard_log", None)
    searcher = make_searcher(cfg.search.agent, env, seed=cfg.seed, **options)

    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    ok = False
    try:
        if resume:
            searcher.load_checkpoint(ckpt_path, env=env)
            info = json.loads((run_dir / "run.json").read_text())
            info.setdefault("resumed", []).append(
                {"command": list(command), "at": _now(), "episodes_done": len(searcher.history)}
            )
        else:
            from prunegym.utils.files import atomic_write_text

            atomic_write_text(run_dir / CONFIG_FILE, cfg.to_yaml())
            if trained_here:  # keep the dense model so export and resume use the same one
                from prunegym.experiments.checkpoint import save_checkpoint

                save_checkpoint(base_path, model, model_name=str(cfg.workload.model),
                                in_channels=data.in_channels, num_classes=data.num_classes,
                                dataset=data.describe())  # fmt: skip
            info = {"command": list(command), "started": _now(), "versions": _versions(),
                    "cwd": os.getcwd()}  # fmt: skip
        _write_json(run_dir / "run.json", info)
        callbacks: list[Any] = [
            BestPolicyCallback(run_dir / "best_policy.json"),
            CheckpointCallback(ckpt_path, cfg.run.checkpoint_every),
            _RunFiles(run_dir),
        ]
        if cfg.run.tensorboard:
            hparams = {k: v for k, v in _flat(cfg.to_dict()).items()
                       if isinstance(v, int | float | str | bool)}  # fmt: skip
            callbacks.append(TensorBoardCallback(run_dir / "tb", hparams=hparams))
        callbacks.append(ProgressBarCallback(cfg.search.episodes, disable=not cfg.run.progress))
        callbacks.extend(extra_callbacks)
        start = time.perf_counter()
        with _graceful_sigint(searcher):
            result = searcher.search(env, cfg.search.episodes, callbacks=callbacks)
        seconds = time.perf_counter() - start
        done = len(result.history)
        status = (
            "interrupted" if searcher.stop_requested and done < cfg.search.episodes else "completed"
        )
        if isinstance(searcher, RLSearcher) and searcher.agent is not None:
            tmp = run_dir / ".agent.tmp.zip"
            searcher.save(tmp)
            os.replace(tmp, run_dir / "agent.zip")
        best = result.best
        per_episode = [r.seconds for r in result.history]
        _write_json(run_dir / "summary.json", {
            "status": status,
            "agent": cfg.search.agent,
            "seed": cfg.seed,
            "episodes": done,
            "episodes_requested": cfg.search.episodes,
            "best_episode": None if best is None else best.episode,
            "best_reward": None if best is None else best.reward,
            "best_metrics": None if best is None else dict(best.metrics),
            "best_sparsities": None if best is None else dict(zip(
                result.unit_names, best.sparsities, strict=True)),
            "seconds_per_episode_mean": sum(per_episode) / max(1, len(per_episode)),
            "seconds_this_session": seconds,
        })  # fmt: skip
        ok = True
        return SearchRun(run_dir, result, status, seconds)
    finally:
        if not ok and created and not ckpt_path.exists():
            shutil.rmtree(run_dir, ignore_errors=True)


# ------------------------------------------------------------------------------ the CLI
def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config file (see configs/)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set search.episodes=50 (repeatable)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="run directory (default: run.out of the config)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the search saved in RUN_DIR (with its saved config)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_cli_config(args: argparse.Namespace) -> tuple[Config, Path, bool]:
    """The config, run directory and resume flag from ``prunegym search`` arguments."""
    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("run.progress=false")
    if args.resume is not None:
        run_dir = args.resume
        saved_path = run_dir / CONFIG_FILE
        if not saved_path.is_file():
            raise ConfigError(f"{run_dir} is not a search run directory (no {CONFIG_FILE})")
        saved = load_config(saved_path)
        if args.config is not None:
            wanted = load_config(args.config, overrides)
        else:
            wanted = load_config(saved_path, overrides)
        diff = config_differences(saved, wanted)
        if diff:
            raise ConfigError(f"{run_dir} was made with another config ({diff[0]} differs: "
                              f"{_flat(saved.to_dict()).get(diff[0])!r} there, "
                              f"{_flat(wanted.to_dict()).get(diff[0])!r} here)")  # fmt: skip
        if args.out is not None and Path(args.out) != Path(run_dir):
            raise ConfigError("--out and --resume name different run directories")
        return wanted, Path(run_dir), True
    if args.config is None:
        raise ConfigError("prunegym search needs --config FILE.yaml (or --resume RUN_DIR)")
    cfg = load_config(args.config, overrides)
    out = args.out if args.out is not None else cfg.run.out
    if out is None:
        raise ConfigError("no run directory: pass --out DIR or set run.out in the config")
    return cfg, Path(out), False


def _run(args: argparse.Namespace) -> int:
    cfg, run_dir, resume = resolve_cli_config(args)
    check_config(cfg)
    outcome = run_search(cfg, run_dir, command=getattr(args, "argv", sys.argv), resume=resume)
    result = outcome.result
    best = result.best
    if outcome.status == "interrupted":
        print(f"prunegym: interrupted after {result.episodes}/{cfg.search.episodes} episodes; "
              f"checkpoint saved. Continue with: prunegym search --resume {run_dir}",
              file=sys.stderr)  # fmt: skip
        return 130
    metrics = "" if best is None else ", ".join(f"{k} {v:.4g}" for k, v in best.metrics.items())
    print(f"{cfg.search.agent}: {result.episodes} episodes, best reward "
          f"{result.best_reward:.4g} ({metrics}) -> {run_dir}")  # fmt: skip
    return 0


SEARCH = Command(
    name="search",
    help="search per-unit pruning sparsities with an RL agent or a baseline; "
    "writes a run directory (history, best policy, agent, checkpoints)",
    configure=_configure,
    run=_run,
)
