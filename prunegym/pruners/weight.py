"""Unstructured weight pruning: per-layer magnitude masks, reversible, foldable."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from prunegym.pruners.channel import HISTORY_ATTR
from prunegym.pruners.errors import PruningError
from prunegym.pruners.masking import MaskingPruner
from prunegym.pruners.policy import PruningPolicy
from prunegym.pruners.table import LayerTable

MAGNITUDE_CRITERIA = ("l1", "magnitude")


class WeightPruner(MaskingPruner):
    """Zero the smallest-magnitude weights of each conv/linear layer.

    Exactly ``floor(sparsity * numel)`` weights go in each layer (ties broken by
    position), so the analytic cost of a policy equals the nonzero count.
    """

    def __init__(self, model: nn.Module, table: LayerTable, importance: str = "l1") -> None:
        super().__init__()
        if table.granularity != "weight":
            raise PruningError("WeightPruner needs a LayerTable built with granularity='weight'")
        if importance not in MAGNITUDE_CRITERIA:
            raise PruningError(f"weight pruning ranks by magnitude; got importance {importance!r}")
        self.model, self.table, self.importance = model, table, importance
        modules = dict(model.named_modules())
        self._order = {}
        for unit in table:
            weight = modules[unit.name].weight.detach().flatten()
            self._order[unit.name] = torch.argsort(weight.abs(), stable=True)

    def policy(self, sparsities: object) -> PruningPolicy:
        if isinstance(sparsities, dict):
            return PruningPolicy(sparsities, "weight", self.importance, 1, self.table.signature)
        return PruningPolicy.from_array(self.table, sparsities, importance=self.importance,
                                        round_to=1)  # fmt: skip

    def _zero(self, model: nn.Module, policy: PruningPolicy, save: bool) -> None:
        policy.validate(self.table)
        kept = self.table.kept_counts(policy.as_array(self.table))
        modules = dict(model.named_modules())
        for unit, k in zip(self.table, kept, strict=True):
            n_removed = unit.channels - int(k)
            if n_removed == 0:
                continue
            weight = modules[unit.name].weight
            if save:
                self._state.save(weight)
            with torch.no_grad():
                weight.view(-1)[self._order[unit.name][:n_removed].to(weight.device)] = 0

    def _apply_mask(self, policy: PruningPolicy) -> None:
        self._zero(self.model, policy, save=True)

    def apply(self, policy: PruningPolicy) -> nn.Module:
        """A copy with the masks folded into the weights (zeros stay zeros)."""
        if self.is_masked:
            raise PruningError("unmask the model before apply()")
        pruned = copy.deepcopy(self.model)
        self._zero(pruned, policy, save=False)
        history = list(getattr(self.model, HISTORY_ATTR, []))
        history.append({"policy": policy.to_dict()})
        setattr(pruned, HISTORY_ATTR, history)
        return pruned


def count_nonzero_cost(model: nn.Module, table: LayerTable) -> tuple[int, int]:
    """(MACs, params) of ``model`` counting only nonzero weights (sparse execution)."""
    modules = dict(model.named_modules())
    macs = params = 0
    for layer in table.layers:
        module = modules[layer.name]
        nonzero = int(torch.count_nonzero(module.weight))
        macs += nonzero * layer.positions
        params += nonzero + (int(np.prod(module.bias.shape)) if module.bias is not None else 0)
    return macs, params
