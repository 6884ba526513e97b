"""Top-1 / top-5 accuracy and cross-entropy of a classifier over batches: the one loop.

Used by the search's :class:`~prunegym.envs.Evaluator` (proxy accuracy on the reward
split) and by ``prunegym.experiments.training.evaluate`` (validation and test splits).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class NonFiniteOutputError(ValueError):
    """The model produced NaN or inf logits (or an infinite loss)."""


@dataclass(frozen=True)
class Score:
    """Hit counts and summed cross-entropy over ``samples`` samples."""

    top1_hits: int
    top5_hits: int
    loss_sum: float
    samples: int

    @property
    def top1(self) -> float:
        return self.top1_hits / self.samples

    @property
    def top5(self) -> float:
        return self.top5_hits / self.samples

    @property
    def loss(self) -> float:
        return self.loss_sum / self.samples


def score_batches(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: torch.device | None = None,
    check_finite: bool = False,
) -> Score:
    """Score ``model`` on ``(x, y)`` batches in eval mode under ``torch.inference_mode``.

    The model's train/eval mode is restored afterwards. With ``device`` each batch is
    moved there first. With ``check_finite``, NaN or inf logits (or an infinite total
    loss) raise :class:`NonFiniteOutputError`. No batches at all is a ValueError.
    """
    was_training = model.training
    model.eval()
    top1 = top5 = n = 0
    loss = 0.0
    try:
        with torch.inference_mode():
            for x, y in batches:
                if device is not None:
                    x, y = x.to(device), y.to(device)
                logits = model(x)
                if check_finite and not bool(torch.isfinite(logits).all()):
                    bad = "NaN" if bool(torch.isnan(logits).any()) else "inf"
                    raise NonFiniteOutputError(f"{bad} logits")
                loss += float(F.cross_entropy(logits, y, reduction="sum"))
                hits = logits.topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
                top1 += int(hits[:, 0].sum())
                top5 += int(hits.any(1).sum())
                n += len(y)
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("no samples to score: the loader yielded no batches")
    if check_finite and not math.isfinite(loss):
        raise NonFiniteOutputError("an infinite loss")
    return Score(top1, top5, loss, n)
