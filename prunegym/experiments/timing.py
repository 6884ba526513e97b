"""CPU latency of the dense and the pruned model, timed fairly and flagged when noisy.

The two models are timed in alternating rounds (dense, pruned, dense, ...), so a load
that comes and goes hits both alike. Each model's figure is the median over all rounds;
``spread`` is how far its round medians lie apart relative to that median. A spread
above :data:`NOISY_SPREAD` means the machine was busy while timing: the figures are
kept but flagged ``noisy``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

#: Relative spread of the round medians above which a latency is flagged as noisy.
NOISY_SPREAD = 0.2


def _summary(rounds: list[Any]) -> dict[str, Any]:
    medians = [r.median_ms for r in rounds]
    median = statistics.median(medians)
    spread = (max(medians) - min(medians)) / median if median > 0 else 0.0
    first = rounds[0]
    return {
        "median_ms": median,
        "p10_ms": min(r.p10_ms for r in rounds),
        "p90_ms": max(r.p90_ms for r in rounds),
        "round_medians_ms": medians,
        "spread": spread,
        "noisy": spread > NOISY_SPREAD,
        "repeats": sum(r.repeats for r in rounds),
        "batch_size": first.batch_size,
        "threads": first.threads,
        "device": first.device,
    }


def compare_latency(
    dense: nn.Module,
    pruned: nn.Module,
    example: torch.Tensor,
    batches: Sequence[int],
    *,
    threads: int | None = None,
    repeats: int = 30,
    rounds: int = 3,
    warmup: int = 5,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Latency of ``dense`` and ``pruned`` on the CPU at each batch size in ``batches``
    (keyed by the batch size as a string), ``rounds`` alternating rounds of ``repeats``
    timed runs each. The models are timed as they are; neither is moved or changed."""
    from prunegym.pruners import measure_latency

    if rounds < 1 or repeats < 1:
        raise ValueError("rounds and repeats must be >= 1")
    out: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] = ({}, {})
    for b in batches:
        x = example[:1].to("cpu").repeat(b, *[1] * (example.dim() - 1))
        timed: tuple[list[Any], list[Any]] = ([], [])
        for _ in range(rounds):
            for model, results in zip((dense, pruned), timed, strict=True):
                results.append(measure_latency(model, x, threads=threads, warmup=warmup,
                                               repeats=repeats))  # fmt: skip
        for summary, results in zip(out, timed, strict=True):
            summary[str(b)] = _summary(results)
    return out


def speed_change(dense_ms: float, pruned_ms: float) -> str:
    """``"1.55x faster"``, ``"1.15x slower"`` or ``"same speed"`` (to two decimals)."""
    ratio = dense_ms / pruned_ms
    if round(ratio, 2) == 1.0:
        return "same speed"
    return f"{ratio:.2f}x faster" if ratio > 1 else f"{1 / ratio:.2f}x slower"
