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
    """One evaluated candidate: the sparsities the env applied and how they scored.

    ``kept`` holds each unit's kept count after rounding (what defines the network);
    ``cache_hit`` says the evaluator scored it from its cache (an equal network was
    evaluated before); ``heldout`` holds the candidate's ``accuracy`` and ``reward`` on
    the held-out slice once it was re-scored there (the selection at the end of a search).
    """

    episode: int
    sparsities: tuple[float, ...]
    reward: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    terms: Mapping[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    policy: PruningPolicy | None = field(default=None, compare=False, repr=False)
    kept: tuple[int, ...] = ()
    cache_hit: bool = False
    heldout: Mapping[str, float] = field(default_factory=dict)

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
        row["cache_hit"] = int(self.cache_hit)
        row.update({f"heldout/{k}": v for k, v in self.heldout.items()})
        row.update({f"sparsity/{n}": s for n, s in zip(names, self.sparsities, strict=True)})
        if self.kept:
            row.update({f"kept/{n}": k for n, k in zip(names, self.kept, strict=True)})
        return row

    def comparable(self) -> tuple[Any, ...]:
        """Everything but the wall-clock time and the cache hit (for determinism checks;
        a resumed search starts with an empty evaluator cache)."""
        return (self.episode, self.sparsities, self.kept, self.reward,
                tuple(sorted(self.metrics.items())), tuple(sorted(self.terms.items())))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-able data (:meth:`from_dict` gives it back exactly)."""
        return {
            "episode": self.episode,
            "sparsities": list(self.sparsities),
            "reward": self.reward,
            "metrics": dict(self.metrics),
            "terms": dict(self.terms),
            "seconds": self.seconds,
            "policy": None if self.policy is None else self.policy.to_dict(),
            "kept": list(self.kept),
            "cache_hit": self.cache_hit,
            "heldout": dict(self.heldout),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodeRecord:
        """A record from :meth:`to_dict`'s data; wrong types are a TypeError or ValueError."""
        policy = data["policy"]
        return cls(
            episode=_int(data["episode"]),
            sparsities=tuple(_float(s) for s in _list(data["sparsities"])),
            reward=_float(data["reward"]),
            metrics={str(k): _float(v) for k, v in _dict(data["metrics"]).items()},
            terms={str(k): _float(v) for k, v in _dict(data["terms"]).items()},
            seconds=_float(data["seconds"]),
            policy=None if policy is None else PruningPolicy.from_dict(_dict(policy)),
            kept=tuple(_int(k) for k in _list(data["kept"])),
            cache_hit=_bool(data["cache_hit"]),
            heldout={str(k): _float(v) for k, v in _dict(data.get("heldout", {})).items()},
        )


@dataclass
class SearchResult:
    """The searcher's answer and the history of every evaluated episode, in order.

    ``best`` is the searcher's answer: the policy in ``best_policy.json`` and the best
    of ``summary.json``. At the end of a search the best candidates by search reward
    (and, for an RL agent, its deterministic actor's policy: ``actor``) are re-scored on
    the held-out slice and ``best`` is the best there (``selection`` holds them all,
    with their ``heldout`` scores); ``search_best`` is the highest search reward. An
    env without a held-out slice, or a stopped search, leaves ``best == search_best``.
    """

    best: EpisodeRecord | None
    history: list[EpisodeRecord]
    unit_names: list[str] | None = None
    selection: list[EpisodeRecord] = field(default_factory=list)
    actor: EpisodeRecord | None = None

    @property
    def search_best(self) -> EpisodeRecord | None:
        """The highest search reward (the earliest on ties)."""
        return best_record(self.history)

    @property
    def best_policy(self) -> PruningPolicy | None:
        return None if self.best is None else self.best.policy

    @property
    def best_reward(self) -> float:
        b = self.best
        return -math.inf if b is None else b.reward

    @property
    def episodes(self) -> int:
        """Evaluated candidates: every episode, cache hits included."""
        return len(self.history)

    @property
    def cache_hits(self) -> int:
        """Episodes whose candidate the evaluator had already scored (no new forward
        pass): late episodes of a converging search repeat candidates."""
        return sum(r.cache_hit for r in self.history)

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


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping, got {type(value).__name__}")
    return value
