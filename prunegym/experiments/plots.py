"""The run's pictures: search progress, the policy per unit, every candidate's trade-off."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import numpy as np

from prunegym.utils.files import atomic_write_bytes


def _save(fig: plt.Figure, path: Path) -> Path:
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, format="png", dpi=120))
    plt.close(fig)
    return path


def plot_reward_curve(rows: Sequence[Mapping[str, str]], path: Path, title: str = "") -> Path:
    """Reward of every episode and the best reward so far."""
    episodes = [int(r["episode"]) for r in rows]
    rewards = np.array([float(r["reward"]) for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(episodes, rewards, ".", alpha=0.5, label="episode reward")
    ax.plot(episodes, np.maximum.accumulate(rewards), "-", lw=2, label="best so far")
    ax.set_xlabel("episode")
    ax.set_ylabel("reward")
    ax.set_title(title or "search progress")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_policy(
    units: Sequence[str], best: Sequence[float], uniform: Sequence[float] | None, path: Path
) -> Path:
    """Per-unit sparsity (after rounding) of the best policy next to the uniform policy
    that meets the same budget."""
    x = np.arange(len(units))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(units) + 2), 4.5))
    width = 0.4 if uniform is not None else 0.8
    ax.bar(x - (width / 2 if uniform is not None else 0), best, width, label="best policy")
    if uniform is not None:
        ax.bar(x + width / 2, uniform, width, label="uniform, same budget")
    ax.set_xticks(x, units, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("sparsity (fraction of channels removed)")
    ax.set_ylim(0, 1)
    ax.set_title("per-unit sparsity after rounding, in execution order")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_candidates(
    rows: Sequence[Mapping[str, str]], budget: float | None, path: Path, metric: str = "macs_ratio"
) -> Path:
    """Every candidate's proxy accuracy against its cost ratio, with the budget line."""
    cost = [float(r.get(metric) or math.nan) for r in rows]
    acc = [float(r.get("accuracy") or math.nan) for r in rows]
    order = [int(r["episode"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    points = ax.scatter(cost, acc, c=order, cmap="viridis", s=14)
    fig.colorbar(points, ax=ax, label="episode")
    if budget is not None:
        ax.axvline(budget, color="red", ls="--", label=f"budget {budget:g}")
        ax.legend()
    ax.set_xlabel(metric.replace("_", " ") + " (pruned / dense)")
    ax.set_ylabel("proxy accuracy (reward_val)")
    ax.set_title("every evaluated candidate")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
