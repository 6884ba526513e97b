"""The bench matrix: one :class:`Cell` (an ordinary search config) per combination, and
what is already on disk for it.

A workload that trains its dense model (``workload.model`` without a checkpoint) is
trained once per bench into ``DIR/dense/<workload>/model.pt`` and every cell prunes that
same model, so cells differ only in the searcher, the budget, the criterion and the seed.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunegym.experiments.bench.config import BenchConfig, load_workload, workload_name
from prunegym.experiments.config import Config, ConfigError, config_differences, load_config
from prunegym.experiments.rundir import CHECKPOINT_FILE
from prunegym.experiments.workload import check_config

CELLS_DIR = "cells"
DENSE_DIR = "dense"
#: Config keys a cell may change between bench invocations without being another cell.
FREE_KEYS = ("run.progress", "run.out", "run.threads", "run.tensorboard")


@dataclass(frozen=True)
class Workload:
    """A workload of the bench: its search config and, when it trains, its dense model."""

    name: str
    path: str
    config: Config  # the workload's config with the bench's overrides
    dense: Path | None  # where the bench keeps the model it trains (None: a checkpoint)


@dataclass(frozen=True)
class Cell:
    """One search run of the matrix."""

    workload: Workload
    target: str
    ratio: float
    importance: str
    searcher: str
    seed: int
    config: Config

    @property
    def key(self) -> str:
        """Its path under ``DIR/cells`` and its id in ``results.jsonl``."""
        return (f"{self.workload.name}/{self.target}{self.ratio:g}-{self.importance}/"
                f"{self.searcher}-s{self.seed}")  # fmt: skip

    def run_dir(self, out: Path) -> Path:
        return out / CELLS_DIR / self.key


def expand(cfg: BenchConfig, out: Path) -> list[Cell]:
    """Every cell of the matrix, its config checked (no model built, nothing written).

    Order: workload, target, ratio, importance, then seed before searcher, so a bench
    cut short has every searcher at the first seeds (comparable pairs) first.
    """
    cells = []
    for path in cfg.workloads:
        work = _workload(cfg, path, out)
        base = work.config
        episodes = cfg.episodes if cfg.episodes is not None else base.search.episodes
        ratios = cfg.ratios or (base.env.ratio,)
        if not all(0.0 < r <= 1.0 for r in ratios):
            raise ConfigError(f"workload {path}: env.ratio must lie in (0, 1], got {ratios[0]}")
        axes = itertools.product(cfg.targets or (base.env.target,), ratios,
                                 cfg.importances or (base.env.importance or "l1",), cfg.seeds,
                                 cfg.searchers)  # fmt: skip
        for target, ratio, importance, seed, searcher in axes:
            changes = _cell_changes(cfg, work, searcher, episodes)
            changes.update({"seed": seed, "env.target": target, "env.ratio": ratio,
                            "env.importance": importance})  # fmt: skip
            cell_cfg = base.replace(**changes)
            check_config(cell_cfg)
            cells.append(Cell(work, target, ratio, importance, searcher, seed, cell_cfg))
    return cells


def _workload(cfg: BenchConfig, path: str, out: Path) -> Workload:
    work = load_workload(cfg, path)
    name = workload_name(path)
    trains = work.workload.checkpoint is None
    dense = (out / DENSE_DIR / name / "model.pt").resolve() if trains else None
    return Workload(name, path, work, dense)


def _cell_changes(cfg: BenchConfig, work: Workload, searcher: str, episodes: int) -> dict:
    changes: dict[str, Any] = {
        "search.agent": searcher,
        "search.episodes": episodes,
        "search.options": dict(cfg.options.get(searcher, {})),
        "run.out": None,
        "run.progress": False,
        "run.tensorboard": cfg.tensorboard,
        "run.threads": cfg.threads,
    }
    if work.dense is not None:
        changes["workload.checkpoint"] = str(work.dense)
    return changes


def check_existing(cells: list[Cell], out: Path) -> None:
    """A cell directory already under ``out`` must hold the same search (else: error)."""
    for cell in cells:
        saved_path = cell.run_dir(out) / "config.yaml"
        if not saved_path.is_file():
            continue
        saved = load_config(saved_path)
        diff = config_differences(saved, cell.config, ignore=FREE_KEYS)
        if diff:
            raise ConfigError(f"{cell.run_dir(out)} was made with another config ({diff[0]} "
                              "differs); use another --out for this bench")  # fmt: skip


# ------------------------------------------------------------------------- cell state
DONE = "done"  # searched and exported with this bench's fine-tune: nothing to evaluate
EXPORT = "export"  # searched; apply, fine-tune and test the selected policy
RESUME = "resume"  # cut: continue the search from its checkpoint
RESTART = "restart"  # cut before its first checkpoint: nothing to keep
FRESH = "fresh"  # not started


def cell_state(cell: Cell, out: Path, cfg: BenchConfig) -> str:
    """What is left to do for ``cell`` given its run directory and the bench's fine-tune."""
    run_dir = cell.run_dir(out)
    if read_json(run_dir / "summary.json").get("status") == "completed":
        done = export_matches(run_dir, cfg.finetune_epochs, cell.seed, cfg.finetune_samples)
        return DONE if done else EXPORT
    if (run_dir / CHECKPOINT_FILE).is_file():
        return RESUME
    return RESTART if run_dir.exists() else FRESH


def export_matches(
    run_dir: Path, finetune_epochs: int, seed: int, finetune_samples: int | None = None
) -> bool:
    """Whether ``run_dir/export`` was made with this fine-tune (epochs, seed and subset
    of the train split; an export from before subsets used the whole split)."""
    from prunegym.experiments.rundir import EXPORT_DIR, METRICS_FILE

    options = read_json(run_dir / EXPORT_DIR / METRICS_FILE).get("options") or {}
    return (options.get("epochs") == finetune_epochs and options.get("seed") == seed
            and options.get("train_samples") == finetune_samples)  # fmt: skip


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
