"""``summary.md``: per workload, target and budget, a table of mean +- std over seeds for
every method (searcher, and criterion when the bench compares criteria), then each
method's paired difference (by seed) to ``random`` and ``uniform`` (and, across
criteria, to the ``random`` criterion) with a seeded bootstrap 95% interval."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prunegym.experiments.bench.config import (
    REFERENCE_IMPORTANCE,
    REFERENCE_SEARCHERS,
    BenchConfig,
)
from prunegym.experiments.bench.stats import Paired, by_seed, group_rows, paired_difference, spread

Row = Mapping[str, Any]

#: (results key, column title, formatter of a mean +- std)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("evaluated", "evaluated", "count"),
    ("cache_hits", "cache hits", "count"),
    ("proxy_accuracy", "proxy acc %", "pct"),
    ("heldout_proxy_accuracy", "held-out proxy %", "pct"),
    ("achieved_ratio", "achieved ratio", "ratio"),
    ("test_top1_before_finetune", "test top-1 % before FT", "pct"),
    ("test_top1_after_finetune", "test top-1 % after FT", "pct"),
    ("wall_seconds", "wall s", "seconds"),
)
#: Metrics of the paired differences (accuracies: percentage points).
PAIRED = (("test_top1_after_finetune", "test top-1 after FT"), ("proxy_accuracy", "proxy acc"))


def context_of(row: Row) -> tuple[str, str, float]:
    return (row["workload"], row["target"], float(row["ratio"]))


def method_of(row: Row) -> tuple[str, str]:
    return (row["searcher"], row["importance"])


def method_label(method: tuple[str, str], several_importances: bool) -> str:
    return f"{method[0]} / {method[1]}" if several_importances else method[0]


def references(method: tuple[str, str], several_importances: bool) -> list[tuple[str, str]]:
    """The methods ``method`` is compared with (itself excluded)."""
    searcher, importance = method
    # a reference searcher is compared only with the references listed before it
    # (uniform - random, not also its mirror image random - uniform)
    names: tuple[str, ...] = REFERENCE_SEARCHERS
    if searcher in names:
        names = names[: names.index(searcher)]
    refs = [(name, importance) for name in names]
    if several_importances:
        refs.append((searcher, REFERENCE_IMPORTANCE))
    return [r for r in refs if r != method]


def render_summary(
    rows: Sequence[Row], cfg: BenchConfig, cells_total: int, command: str
) -> str:  # fmt: skip
    """The whole ``summary.md`` for the finished ``rows`` of a bench."""
    several = len({r["importance"] for r in rows}) > 1
    lines = [
        "# prunegym bench summary",
        "",
        f"{len(rows)} of {cells_total} cells finished. Regenerate (finished cells are "
        f"skipped): `{command}`",
        "",
        "Mean ± sample standard deviation over seeds (one value: no ±). Accuracies in %, "
        "differences in percentage points (pp). Paired difference: method - reference on "
        "the same seed, averaged over the seeds both finished (n); the interval is a 95% "
        f"percentile bootstrap of that mean ({cfg.bootstrap_samples} resamples, "
        f"numpy default_rng({cfg.bootstrap_seed})). Proxy acc: the selected policy's "
        "accuracy on the search's reward slice; test top-1: the physically pruned model "
        f"on the test split, before and after {cfg.finetune_epochs} fine-tuning epochs.",
        "",
        finetune_line(rows, cfg),
    ]
    for context, group in group_rows(rows, context_of).items():
        lines += ["", *_context_section(context, group, cfg, several)]
    return "\n".join(lines) + "\n"


def finetune_line(rows: Sequence[Row], cfg: BenchConfig) -> str:
    """``fine-tune: 1 epoch on 10000 training samples`` (a seeded subset per seed, or the
    whole train split), from the finished rows."""
    epochs = f"{cfg.finetune_epochs} epoch{'' if cfg.finetune_epochs == 1 else 's'}"
    counts = sorted({r["finetune_samples"] for r in rows if r.get("finetune_samples")})
    sizes = "/".join(str(n) for n in counts) or "?"
    if cfg.finetune_samples is None:
        return f"Fine-tune: {epochs} on the whole train split ({sizes} training samples)."
    return (
        f"Fine-tune: {epochs} on {cfg.finetune_samples} training samples (a subset of "
        "the train split drawn with each cell's seed: the same for every cell of a seed)."
    )


def _context_section(
    context: tuple[str, str, float], rows: Sequence[Row], cfg: BenchConfig, several: bool
) -> list[str]:
    workload, target, ratio = context
    dense = spread(r.get("dense_test_top1") for r in rows)
    methods = group_rows(rows, method_of)
    head = ["method", "seeds", *(title for _, title, _ in COLUMNS)]
    out = [f"## {workload} · {target} ≤ {ratio:g} of dense (dense test top-1 "
           f"{_fmt(dense.mean, math.nan, 'pct')}%)", "", *_table_head(head)]  # fmt: skip
    for method, group in methods.items():
        cells = [method_label(method, several), str(len(group))]
        for key, _, kind in COLUMNS:
            s = spread(r.get(key) for r in group)
            cells.append(_fmt(s.mean, s.std, kind))
        out.append(_table_row(cells))
    pairs = _paired_rows(methods, cfg, several)
    if pairs:
        head = ["method", "reference", "n", *(f"{t} (pp, 95% CI)" for _, t in PAIRED)]
        out += ["", "Paired differences (method - reference, same seeds):", ""]
        out += [*_table_head(head), *pairs]
    return out


def _paired_rows(
    methods: Mapping[tuple[str, str], Sequence[Row]], cfg: BenchConfig, several: bool
) -> list[str]:
    lines = []
    for method, group in methods.items():
        for ref in references(method, several):
            if ref not in methods:
                continue
            diffs = [paired_difference(by_seed(group, key), by_seed(methods[ref], key),
                                       cfg.bootstrap_samples, cfg.bootstrap_seed)
                     for key, _ in PAIRED]  # fmt: skip
            n = max((d.n for d in diffs if d is not None), default=0)
            if n == 0:
                continue
            cells = [method_label(method, several), method_label(ref, several), str(n)]
            lines.append(_table_row([*cells, *(format_paired(d) for d in diffs)]))
    return lines


def format_paired(d: Paired | None, scale: float = 100.0) -> str:
    """``+0.41 [-0.20, +1.02]`` in percentage points; ``-`` without pairs."""
    if d is None:
        return "-"
    return f"{d.mean * scale:+.2f} [{d.low * scale:+.2f}, {d.high * scale:+.2f}]"


_FORMATS: dict[str, Callable[[float], str]] = {
    "pct": lambda v: f"{100 * v:.2f}",
    "ratio": lambda v: f"{v:.3f}",
    "seconds": lambda v: f"{v:.1f}",
    "count": lambda v: f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}",
}


def _fmt(mean: float, std: float, kind: str) -> str:
    if math.isnan(mean):
        return "-"
    f = _FORMATS[kind]
    text = f(mean)
    if not math.isnan(std):
        text += f" ± {f(std)}"
    return text


def _table_head(cells: Sequence[str]) -> list[str]:
    return [_table_row(cells), _table_row(["---"] * len(cells))]


def _table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
