"""Adaptive batch-norm recalibration (EagleEye, Li et al. 2020) and exact BN snapshots."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_BN = nn.modules.batchnorm._BatchNorm


def _tracking_bns(model: nn.Module) -> list[_BN]:
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Recompute every BN's running statistics as the plain average over ``batches``.

    Only the BN layers run in training mode (dropout and the rest stay in eval mode);
    momentum and training flags are restored afterwards.
    """
    bns = _tracking_bns(model)
    if not bns:
        return
    modes = {m: m.training for m in model.modules()}
    momenta = [bn.momentum for bn in bns]
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: every batch weighs the same
            bn.train()
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
        for m, training in modes.items():
            m.training = training


class BNSnapshot:
    """Running statistics of every BN of a model, restored exactly by :meth:`restore`."""

    def __init__(self, model: nn.Module) -> None:
        self.saved = [
            (buf, buf.detach().clone())
            for m in _tracking_bns(model)
            for buf in (m.running_mean, m.running_var, m.num_batches_tracked)
            if buf is not None
        ]

    def restore(self) -> None:
        with torch.no_grad():
            for buf, original in self.saved:
                buf.copy_(original)
