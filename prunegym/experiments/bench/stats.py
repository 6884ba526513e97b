"""Aggregation over seeds: mean and sample standard deviation, and paired differences
(by seed) with a seeded percentile-bootstrap interval. numpy only."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation (ddof 1; NaN below two values) of ``n`` values."""

    n: int
    mean: float
    std: float


@dataclass(frozen=True)
class Paired:
    """``a - b`` over the ``n`` seeds both have: mean and a bootstrap interval."""

    n: int
    mean: float
    low: float
    high: float
    seeds: tuple[int, ...]


def spread(values: Iterable[float | None]) -> Spread:
    """Mean and std of the values that are numbers (``None`` and NaN are left out)."""
    xs = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if xs.size == 0:
        return Spread(0, math.nan, math.nan)
    std = float(xs.std(ddof=1)) if xs.size > 1 else math.nan
    return Spread(int(xs.size), float(xs.mean()), std)


def bootstrap_interval(
    diffs: Sequence[float], samples: int = 10000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs``: ``samples`` resamples
    with replacement drawn by ``numpy.random.default_rng(seed)``."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(int(samples), d.size))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(
    a: Mapping[int, float | None],
    b: Mapping[int, float | None],
    samples: int = 10000,
    seed: int = 0,
) -> Paired | None:
    """``a[s] - b[s]`` over the seeds ``s`` both have a value for; ``None`` if none."""
    seeds = tuple(sorted(s for s in a if s in b and _number(a[s]) and _number(b[s])))
    if not seeds:
        return None
    diffs = [float(a[s]) - float(b[s]) for s in seeds]  # type: ignore[arg-type]
    low, high = bootstrap_interval(diffs, samples, seed)
    return Paired(len(seeds), float(np.mean(diffs)), low, high, seeds)


def _number(value: Any) -> bool:
    return value is not None and not math.isnan(float(value))


def group_rows(
    rows: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]
) -> dict[Any, list[Mapping[str, Any]]]:
    """Rows by ``key(row)``, groups and rows in first-seen order."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def by_seed(rows: Iterable[Mapping[str, Any]], metric: str) -> dict[int, float | None]:
    """``{seed: row[metric]}`` for the rows of one method in one context."""
    return {int(r["seed"]): r.get(metric) for r in rows}
