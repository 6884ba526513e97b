"""Channel importance criteria, a registry chosen by name.

Each criterion scores every channel of a unit (higher = more important); the pruner
removes the lowest-scored channels. Scores are computed once, on the dense model.

- ``l1``/``l2``: norm of the unit's filters (Li et al., "Pruning Filters for Efficient
  ConvNets"); for coupled channels the norms of all coupled filters are summed.
- ``consumer_l1``: L1 norm of the weights that *read* each channel, summed over the
  consumer layers (AMC's channel selection: ``|W|.sum((0, 2, 3))`` of the next layer).
- ``bn_scale``: |gamma| of the unit's batch norms (Liu et al., network slimming).
- ``taylor``: first-order Taylor expansion of the loss (Molchanov et al. 2019), from
  one calibration batch's gradients; Torch-Pruning's ``GroupTaylorImportance``.
- ``fpgm``: distance to the geometric median of the filters (He et al. 2019);
  Torch-Pruning's ``FPGMImportance``.
- ``random``: a seeded random order, the control every criterion should beat.

Torch-Pruning's ``HessianImportance`` is deliberately absent: in 1.6 it keeps only
the last sample's statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from prunegym.pruners.errors import PruningError
from prunegym.pruners.units import PrunableUnit

# A criterion scores one unit: (unit, modules by name, TP group with full idxs, rng) -> scores
Criterion = Callable[
    [PrunableUnit, dict[str, nn.Module], "tp.Group", np.random.Generator], np.ndarray
]


def _filter_norm(p: int) -> Criterion:
    def score(unit, modules, _group, _rng):  # type: ignore[no-untyped-def]
        total = np.zeros(unit.channels)
        for m in unit.members:
            module = modules[m.name]
            if m.direction != "out" or not isinstance(
                module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
            ):
                continue
            w = module.weight.detach()[list(m.idxs)].flatten(1).double()
            norms = w.abs().sum(1) if p == 1 else w.pow(2).sum(1)
            np.add.at(total, np.asarray(m.root_idxs), norms.cpu().numpy())
        return np.sqrt(total) if p == 2 else total

    return score


def _consumer_l1(unit, modules, _group, _rng):  # type: ignore[no-untyped-def]
    total = np.zeros(unit.channels)
    found = False
    for m in unit.members:
        module = modules[m.name]
        dense = isinstance(module, nn.Linear) or (
            isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.groups == 1
        )
        if m.direction != "in" or not dense:
            continue  # a depthwise conv only carries the channel to its consumer
        found = True
        w = module.weight.detach().transpose(0, 1)[list(m.idxs)].flatten(1).double()
        np.add.at(total, np.asarray(m.root_idxs), w.abs().sum(1).cpu().numpy())
    if not found:
        raise PruningError(f"consumer_l1 needs a conv or linear layer reading unit {unit.name!r}")
    return total


def _bn_scale(unit, modules, _group, _rng):  # type: ignore[no-untyped-def]
    total = np.zeros(unit.channels)
    found = False
    for m in unit.members:
        module = modules[m.name]
        if m.direction == "out" and isinstance(module, nn.modules.batchnorm._BatchNorm):
            if module.weight is None:
                continue
            found = True
            gamma = module.weight.detach()[list(m.idxs)].abs().double().cpu().numpy()
            np.add.at(total, np.asarray(m.root_idxs), gamma)
    if not found:
        raise PruningError(f"bn_scale needs an affine batch norm in unit {unit.name!r}")
    return total


def _from_torch_pruning(factory: Callable[[], tp.importance.Importance]) -> Criterion:
    def score(unit, _modules, group, _rng):  # type: ignore[no-untyped-def]
        scores = factory()(group)
        if scores is None:
            raise PruningError(f"torch-pruning returned no importance for unit {unit.name!r}")
        return scores.detach().double().cpu().numpy()

    return score


def _random(unit, _modules, _group, rng):  # type: ignore[no-untyped-def]
    return rng.random(unit.channels)


IMPORTANCES: dict[str, Criterion] = {
    "l1": _filter_norm(1),
    "l2": _filter_norm(2),
    "consumer_l1": _consumer_l1,
    "bn_scale": _bn_scale,
    "taylor": _from_torch_pruning(tp.importance.GroupTaylorImportance),
    "fpgm": _from_torch_pruning(tp.importance.FPGMImportance),
    "random": _random,
}
NEEDS_GRADIENTS = frozenset({"taylor"})


def get_criterion(name: str) -> Criterion:
    if name not in IMPORTANCES:
        raise PruningError(f"unknown importance {name!r}; known: {', '.join(IMPORTANCES)}")
    return IMPORTANCES[name]


def accumulate_gradients(
    model: nn.Module, calibration: tuple[torch.Tensor, torch.Tensor] | None
) -> None:
    """Fill ``.grad`` of ``model`` (a private copy) with one batch's cross-entropy gradient."""
    if calibration is None:
        raise PruningError("importance 'taylor' needs calibration=(inputs, targets)")
    inputs, targets = calibration
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
