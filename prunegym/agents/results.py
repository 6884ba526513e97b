"""What a search produces: one record per evaluated episode, and the best policy."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunegym.pruners import PruningPolicy

#: Keys of an episode's final ``info`` that become metric columns when present.
METRIC_KEYS = ("accuracy", "macs_ratio", "params_ratio", "latency_ratio")


@dataclass(frozen=True)
class EpisodeRecord:
    """One evaluated candidate: the sparsities the env applied and how they scored."""

    episode: int
    sparsities: tuple[float, ...]
    reward: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    terms: Mapping[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    policy: PruningPolicy | None = field(default=None, compare=False, repr=False)

    @property
    def accuracy(self) -> float:
        return float(self.metrics.get("accuracy", math.nan))

    def row(self, unit_names: Sequence[str] | None = None) -> dict[str, Any]:
        """A flat CSV row (``sparsity/<unit>`` columns, metrics, ``term/<name>``, ...)."""
        names = unit_names or [str(i) for i in range(len(self.sparsities))]
        row: dict[str, Any] = {"episode": self.episode, "reward": self.reward}
        row.update({k: v for k, v in self.metrics.items()})
        row.update({f"term/{k}": v for k, v in self.terms.items()})
        row["seconds"] = self.seconds
        row.update({f"sparsity/{n}": s for n, s in zip(names, self.sparsities, strict=True)})
        return row

    def comparable(self) -> tuple[Any, ...]:
        """Everything but the wall-clock time (for determinism checks)."""
        return (self.episode, self.sparsities, self.reward, tuple(sorted(self.metrics.items())),
                tuple(sorted(self.terms.items())))  # fmt: skip


@dataclass
class SearchResult:
    """The best policy found and the history of every evaluated episode, in order."""

    best_policy: PruningPolicy | None
    history: list[EpisodeRecord]
    unit_names: list[str] | None = None

    @property
    def best(self) -> EpisodeRecord | None:
        return best_record(self.history)

    @property
    def best_reward(self) -> float:
        b = self.best
        return -math.inf if b is None else b.reward

    @property
    def episodes(self) -> int:
        return len(self.history)

    def best_so_far(self) -> np.ndarray:
        """Best reward after each episode (the search's learning curve)."""
        rewards = np.array([r.reward for r in self.history], dtype=np.float64)
        return np.maximum.accumulate(rewards) if rewards.size else rewards

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        text = history_csv(self.history, self.unit_names)
        if path is not None:
            from prunegym.utils.files import atomic_write_text

            atomic_write_text(Path(path), text)
        return text


def best_record(history: Iterable[EpisodeRecord]) -> EpisodeRecord | None:
    """The record with the highest reward (the earliest on ties)."""
    best = None
    for rec in history:
        if best is None or rec.reward > best.reward:
            best = rec
    return best


def history_csv(history: Sequence[EpisodeRecord], unit_names: Sequence[str] | None = None) -> str:
    """``history.csv``: one row per episode, columns in a stable order."""
    rows = [r.row(unit_names) for r in history]
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    return out.getvalue()


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return value
