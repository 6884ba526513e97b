"""The bench's figures: ``pareto.png`` (test top-1 after fine-tuning against the achieved
cost ratio, one marker per method) and ``curves.png`` (best-so-far reward per episode,
mean over seeds with a min-max band, one line per method)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import numpy as np

from prunegym.experiments.bench.stats import group_rows
from prunegym.experiments.bench.summary import method_label, method_of
from prunegym.utils.files import atomic_write_bytes

Row = Mapping[str, Any]
MARKERS = "os^Dv<>pPX*h"


def _save(fig: plt.Figure, path: Path) -> Path:
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, format="png", dpi=120))
    plt.close(fig)
    return path


def _grid(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.2 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _styles(rows: Sequence[Row], several: bool) -> dict[str, tuple[str, str]]:
    """A (marker, colour) per method label, the same in every panel."""
    labels = list(dict.fromkeys(method_label(method_of(r), several) for r in rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: (MARKERS[i % len(MARKERS)], colours[i % len(colours)])
            for i, label in enumerate(labels)}  # fmt: skip


def _by_method(rows: Sequence[Row], several: bool) -> dict[Any, list[Row]]:
    return group_rows(rows, lambda r: method_label(method_of(r), several))


def plot_pareto(rows: Sequence[Row], path: Path) -> Path:
    """Test top-1 after fine-tuning vs achieved ratio, a panel per workload and target."""
    several = len({r["importance"] for r in rows}) > 1
    styles = _styles(rows, several)
    panels = group_rows(rows, lambda r: (r["workload"], r["target"]))
    fig, axes = _grid(len(panels))
    for ax, ((workload, target), group) in zip(axes, panels.items(), strict=True):
        for label, points in _by_method(group, several).items():
            marker, colour = styles[label]
            ax.scatter([p["achieved_ratio"] for p in points],
                       [100 * p["test_top1_after_finetune"] for p in points],
                       marker=marker, color=colour, label=label, alpha=0.8)  # fmt: skip
        for ratio in sorted({float(r["ratio"]) for r in group}):
            ax.axvline(ratio, color="grey", ls=":", lw=1)
        dense = [r["dense_test_top1"] for r in group if r.get("dense_test_top1") is not None]
        if dense:
            ax.axhline(100 * float(np.mean(dense)), color="black", ls="--", lw=1, label="dense")
        _label(
            ax,
            f"achieved {target} ratio (pruned / dense)",
            "test top-1 % after fine-tuning",
            f"{workload}: accuracy vs {target}",
        )
    fig.tight_layout()
    return _save(fig, path)


def _focus(ax: plt.Axes, lows: Sequence[np.ndarray], highs: Sequence[np.ndarray]) -> None:
    """Show the bands after the first tenth of the episodes in full, so a poor first
    candidate does not flatten the differences that matter."""
    low, high = (np.concatenate(v) if v else np.array([]) for v in (lows, highs))
    low, high = low[np.isfinite(low)], high[np.isfinite(high)]
    if low.size and high.size and high.max() > low.min():
        pad = 0.05 * (high.max() - low.min())
        ax.set_ylim(low.min() - pad, high.max() + pad)


def best_so_far(history: Sequence[Mapping[str, str]], length: int) -> np.ndarray:
    """Best reward after each episode, held after the last one up to ``length`` episodes
    (a searcher that stopped early keeps its best)."""
    rewards = np.array([float(r["reward"]) for r in history], dtype=np.float64)
    if rewards.size == 0:
        return np.full(length, np.nan)
    curve = np.maximum.accumulate(rewards)
    return np.concatenate([curve, np.full(max(0, length - curve.size), curve[-1])])[:length]


def plot_curves(rows: Sequence[Row], histories: Mapping[str, Sequence[Mapping[str, str]]],
                path: Path) -> Path:  # fmt: skip
    """Best-so-far reward per episode (``histories``: cell key -> history.csv rows), a
    panel per workload, target, budget; mean over seeds and a min-max band per method.
    The y axis shows the bands after the first tenth of the episodes in full."""
    several = len({r["importance"] for r in rows}) > 1
    styles = _styles(rows, several)
    panels = group_rows(rows, lambda r: (r["workload"], r["target"], float(r["ratio"])))
    fig, axes = _grid(len(panels))
    for ax, ((workload, target, ratio), group) in zip(axes, panels.items(), strict=True):
        length = max(int(r["episodes"]) for r in group)
        x = np.arange(1, length + 1)
        lows, highs = [], []
        for label, cells in _by_method(group, several).items():
            curves = np.stack([best_so_far(histories.get(c["cell"], []), length) for c in cells])
            colour = styles[label][1]
            ax.plot(x, np.nanmean(curves, axis=0), color=colour, label=label)
            low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
            ax.fill_between(x, low, high, color=colour, alpha=0.15)
            lows.append(low[length // 10 :])
            highs.append(high)
        _focus(ax, lows, highs)
        _label(
            ax,
            "episode (evaluated candidates)",
            "best reward so far",
            f"{workload}: {target} ≤ {ratio:g}",
        )
    fig.tight_layout()
    return _save(fig, path)


def _label(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels, title, a light grid and a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
