"""Structured channel pruning: reversible group masks and physical removal."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from prunegym.pruners.errors import PruningError
from prunegym.pruners.graph import GuardedGraph, build_graph, preserved_mode
from prunegym.pruners.importance import NEEDS_GRADIENTS, accumulate_gradients, get_criterion
from prunegym.pruners.masking import (
    MaskingPruner,
    Removals,
    index_members,
    layer_removals,
    zero_removed,
)
from prunegym.pruners.policy import PruningPolicy
from prunegym.pruners.table import LayerTable, count_cost

if TYPE_CHECKING:
    from prunegym.pruners.reconstruction import Reconstructor

HISTORY_ATTR = "_prunegym_history"


class ChannelPruner(MaskingPruner):
    """Prune whole channels of ``model`` as described by ``table``.

    ``mask`` zeroes the conv/linear weights and biases and the batch-norm gamma and
    beta of every removed channel in every member of its group: numerically the same
    network as physical removal, and reversible. ``apply`` removes the channels for
    real on a copy through Torch-Pruning; the caller's model is never mutated.

    Channel importance is computed once, on the dense model, by ``importance``
    (see :mod:`prunegym.pruners.importance`); ``calibration=(inputs, targets)`` is
    needed by ``taylor``. ``reconstruction`` optionally refits each layer that
    consumes pruned channels by least squares (AMC).
    """

    def __init__(
        self,
        model: nn.Module,
        table: LayerTable,
        importance: str = "l1",
        round_to: int = 8,
        example_input: torch.Tensor | None = None,
        calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
        seed: int = 0,
        reconstruction: Reconstructor | None = None,
    ) -> None:
        super().__init__()
        if table.granularity != "channel":
            raise PruningError("ChannelPruner needs a LayerTable built with granularity='channel'")
        self.model = model
        self.table = table
        self.importance = importance
        self.round_to = int(round_to)
        self.reconstruction = reconstruction
        param = next(model.parameters())
        self.example_input = (
            example_input if example_input is not None
            else torch.zeros(table.input_shape, dtype=param.dtype, device=param.device)
        )  # fmt: skip
        self._modules = dict(model.named_modules())
        missing = [n for u in table for n in u.layer_names if n not in self._modules]
        if missing:
            raise PruningError(f"policy table was made for another model: no layer {missing[0]!r}")
        self._order = self._rank_channels(importance, calibration, seed)
        self._members = index_members(table)

    # policy -> indices ------------------------------------------------------------
    def policy(self, sparsities: Any) -> PruningPolicy:
        """A policy for this pruner from one sparsity per unit (or a name->sparsity map)."""
        if isinstance(sparsities, dict):
            return PruningPolicy(sparsities, "channel", self.importance, self.round_to,
                                 self.table.signature)  # fmt: skip
        return PruningPolicy.from_array(self.table, sparsities, importance=self.importance,
                                        round_to=self.round_to)  # fmt: skip

    def removed_channels(self, policy: PruningPolicy) -> dict[str, np.ndarray]:
        """The channels each unit removes under ``policy`` (sorted unit-channel indices)."""
        self._check(policy)
        kept = self.table.kept_counts(policy.as_array(self.table), policy.round_to)
        return {
            unit.name: np.sort(self._order[i][: unit.channels - int(kept[i])])
            for i, unit in enumerate(self.table)
        }

    def _check(self, policy: PruningPolicy) -> None:
        policy.validate(self.table)
        if policy.importance != self.importance:
            raise PruningError(
                f"policy ranks channels by {policy.importance!r} but this pruner by "
                f"{self.importance!r}"
            )

    def layer_removals(self, removed: dict[str, np.ndarray]) -> Removals:
        """Per layer, the output ("out") and input ("in") channel indices that go."""
        return layer_removals(self.table, self._members, removed)

    # masks ------------------------------------------------------------------------
    def _apply_mask(self, policy: PruningPolicy) -> None:
        removals = self.layer_removals(self.removed_channels(policy))
        if self.reconstruction is not None:  # refit first: the output zeros below must win
            for name, parts in removals.items():
                if parts["in"] and self.reconstruction.covers(name):
                    weight = self._modules[name].weight
                    self._state.save(weight)
                    with torch.no_grad():
                        weight.copy_(self.reconstruction.refit(name, parts["in"], full=True))
        zero_removed(self._state, self._modules, removals)

    # physical removal -------------------------------------------------------------
    def apply(self, policy: PruningPolicy) -> nn.Module:
        """Return a physically smaller copy of the model; the caller's model is untouched."""
        if self.is_masked:
            raise PruningError("unmask the model before apply()")
        removed = self.removed_channels(policy)
        pruned = copy.deepcopy(self.model)
        modules = dict(pruned.named_modules())
        graphs = self._graphs(pruned)
        for unit in self.table:
            idxs = removed[unit.name].tolist()
            if not idxs:
                continue
            graphs[unit.region].out_group(modules[unit.name], idxs).prune()
        if self.reconstruction is not None:
            for name, parts in self.layer_removals(removed).items():
                if parts["in"] and self.reconstruction.covers(name):
                    weight = self.reconstruction.refit(name, parts["in"])
                    keep = np.setdiff1d(np.arange(weight.shape[0]), parts["out"])
                    with torch.no_grad():
                        modules[name].weight.copy_(weight[torch.as_tensor(keep)])
        self._validate(pruned, policy)
        history = list(getattr(self.model, HISTORY_ATTR, []))
        history.append({"policy": policy.to_dict(),
                        "removed": {k: v.tolist() for k, v in removed.items()}})  # fmt: skip
        setattr(pruned, HISTORY_ATTR, history)
        return pruned

    def _validate(self, pruned: nn.Module, policy: PruningPolicy) -> None:
        with preserved_mode(pruned), torch.no_grad():
            pruned.eval()
            try:
                out = pruned(self.example_input)
            except Exception as exc:
                raise PruningError(f"the physically pruned model no longer runs: {exc}") from exc
        if tuple(out.shape) != self.table.output_shape:
            raise PruningError(
                f"the pruned model's output shape {tuple(out.shape)} differs from the dense "
                f"model's {self.table.output_shape}"
            )
        expected, counted = self.table.cost(policy), count_cost(pruned, self.example_input)
        if expected != counted:
            raise PruningError(
                f"physical pruning disagrees with the table: expected {expected}, got {counted}"
            )

    def _graphs(self, model: nn.Module) -> dict[str, GuardedGraph]:
        """A dependency graph of ``model`` (a copy of ours) for every region with units:
        the whole model, or the submodules Torch-Pruning traces when it cannot."""
        graphs: dict[str, GuardedGraph] = {}
        for region in dict.fromkeys(unit.region for unit in self.table):
            if not region:
                graphs[region] = build_graph(model, self.example_input)
                continue
            x = torch.zeros(self.table.regions[region], dtype=self.example_input.dtype,
                            device=self.example_input.device)  # fmt: skip
            graphs[region] = build_graph(model.get_submodule(region), x)
        return graphs

    # importance -------------------------------------------------------------------
    def _rank_channels(
        self, importance: str, calibration: tuple[torch.Tensor, torch.Tensor] | None, seed: int
    ) -> list[np.ndarray]:
        criterion = get_criterion(importance)
        scratch = copy.deepcopy(self.model)
        scratch.eval()
        if importance in NEEDS_GRADIENTS:
            accumulate_gradients(scratch, calibration)
        graphs = self._graphs(scratch)
        modules = dict(scratch.named_modules())
        rng = np.random.default_rng(seed)
        order = []
        for unit in self.table:
            module = modules[unit.name]
            group = graphs[unit.region].out_group(module, range(unit.channels))
            scores = np.asarray(criterion(unit, modules, group, rng), dtype=np.float64)
            if scores.shape != (unit.channels,) or not np.all(np.isfinite(scores)):
                raise PruningError(
                    f"importance {importance!r} gave invalid scores for {unit.name!r}"
                )
            order.append(_removal_order(scores, unit.channel_groups))
        return order


def _removal_order(scores: np.ndarray, groups: int) -> np.ndarray:
    """Channels from least to most important; with ``groups > 1`` (a unit that feeds or
    fills a grouped conv) whole positions go, the same in every group: a position's
    score sums its channels' scores across the groups (Torch-Pruning averages them)."""
    if groups == 1:
        return np.argsort(scores, kind="stable")
    per_group = scores.size // groups
    positions = np.argsort(scores.reshape(groups, per_group).sum(axis=0), kind="stable")
    return (positions[:, None] + per_group * np.arange(groups)[None, :]).reshape(-1)
