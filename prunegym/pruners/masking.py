"""Reversible in-place masks: zero some entries, remember the originals, restore exactly."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from prunegym.pruners.errors import PruningError
from prunegym.pruners.policy import PruningPolicy
from prunegym.pruners.units import Member, PrunableUnit

IndexedMember = tuple[Member, np.ndarray, np.ndarray]  # member, its root idxs, its idxs
Removals = dict[str, dict[str, list[int]]]  # layer -> {"out": [...], "in": [...]}


def index_members(units: Iterable[PrunableUnit]) -> list[list[IndexedMember]]:
    """Each unit's members with their index tuples as arrays (for fast lookups)."""
    return [[(m, np.asarray(m.root_idxs), np.asarray(m.idxs)) for m in u.members] for u in units]


def layer_removals(
    units: Iterable[PrunableUnit],
    indexed: Iterable[list[IndexedMember]],
    removed: Mapping[str, np.ndarray],
) -> Removals:
    """Per layer, the output ("out") and input ("in") channel indices that go when each
    unit removes ``removed[unit.name]`` (its own channel indices)."""
    layers: Removals = {}
    for unit, members in zip(units, indexed, strict=True):
        gone = removed.get(unit.name)
        if gone is None or gone.size == 0:
            continue
        for member, roots, idxs in members:
            hit = idxs[np.isin(roots, gone)]
            layers.setdefault(member.name, {"out": [], "in": []})[member.direction] += hit.tolist()
    return layers


def zero_removed(state: MaskedState, modules: Mapping[str, nn.Module], removals: Removals) -> None:
    """The mask: zero the weight and bias rows of every removed output channel (conv,
    linear and batch-norm alike), which equals removing the channel."""
    for name, parts in removals.items():
        if not parts["out"]:
            continue
        module: Any = modules[name]
        rows = torch.as_tensor(sorted(set(parts["out"])), device=module.weight.device)
        state.zero_rows(module.weight, rows)
        state.zero_rows(getattr(module, "bias", None), rows)


class MaskedState:
    """The original values of every tensor a mask changed, restored bit for bit."""

    def __init__(self) -> None:
        self._saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def active(self) -> bool:
        return bool(self._saved)

    @torch.no_grad()
    def zero_rows(self, tensor: torch.Tensor | None, rows: torch.Tensor, dim: int = 0) -> None:
        """Zero ``tensor``'s entries at ``rows`` along ``dim``, saving the original first."""
        if tensor is None or rows.numel() == 0:
            return
        self.save(tensor)
        tensor.index_fill_(dim, rows, 0)

    @torch.no_grad()
    def save(self, tensor: torch.Tensor) -> None:
        key = id(tensor)
        if key not in self._saved:
            self._saved[key] = (tensor, tensor.detach().clone())

    @torch.no_grad()
    def restore(self) -> None:
        for tensor, original in self._saved.values():
            tensor.copy_(original)
        self._saved.clear()


class MaskingPruner:
    """Shared mask/unmask protocol of the channel and weight pruners."""

    model: nn.Module

    def __init__(self) -> None:
        self._state = MaskedState()

    @property
    def is_masked(self) -> bool:
        return self._state.active

    def mask(self, policy: PruningPolicy) -> None:
        """Apply ``policy`` to the live model as reversible zeros."""
        if self._state.active:
            raise PruningError("the model is already masked; call unmask() first")
        try:
            self._apply_mask(policy)
        except BaseException:
            self._state.restore()
            raise

    def unmask(self) -> None:
        """Restore the exact original tensors."""
        self._state.restore()

    @contextlib.contextmanager
    def masked(self, policy: PruningPolicy) -> Iterator[nn.Module]:
        """``with pruner.masked(policy) as model:`` the model is masked inside the block."""
        self.mask(policy)
        try:
            yield self.model
        finally:
            self.unmask()

    def _apply_mask(self, policy: PruningPolicy) -> None:
        raise NotImplementedError
