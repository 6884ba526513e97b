"""Every unit is checked once, when the table is built: masking it equals removing it.

Torch-Pruning can trace a model and still misread it: a channel shuffle that it takes
for a plain reshape makes it remove the wrong input channels downstream, and the
result runs, silently different from the masked network the search scores. So one
step of every unit (one channel, or one position of every group) is masked on the
model and removed from a copy: both must give the same output on a seeded input, and
the copy's layers must have the widths the table's cost model expects.
If they do not, bisection finds the units at fault, which are then frozen. (A mask
that makes the output non-finite, such as a channel normalised by its own sum, is
left to the evaluator, which reports it with the policy.)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from prunegym.pruners.graph import PRUNABLE_TYPES, build_graph, preserved_mode
from prunegym.pruners.masking import MaskedState, index_members, layer_removals, zero_removed
from prunegym.pruners.trace import is_depthwise
from prunegym.pruners.units import PrunableUnit

_RTOL = 1e-4


def one_step(unit: PrunableUnit) -> np.ndarray:
    """The fewest channels ``unit`` can remove: position 0 of each of its groups."""
    per_group = unit.channels // unit.channel_groups
    return np.arange(unit.channel_groups) * per_group


def unfaithful_units(
    module: nn.Module, x: torch.Tensor, units: Sequence[PrunableUnit], prefix: str = ""
) -> dict[str, str]:
    """Units of ``module`` (named with ``prefix`` when it is a submodule) whose removal
    differs from their mask or changes the module's output shape, with the reason."""
    if not units:
        return {}
    gen = torch.Generator(device=x.device).manual_seed(0)
    probe = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return _bisect(module, probe, list(units), prefix)


def _bisect(module: nn.Module, probe: torch.Tensor, units: list, prefix: str) -> dict[str, str]:
    problem = _mismatch(module, probe, units, prefix)
    if problem is None:
        return {}
    if len(units) == 1:
        return {units[0].name: problem}
    half = len(units) // 2
    found = _bisect(module, probe, units[:half], prefix)
    found.update(_bisect(module, probe, units[half:], prefix))
    return found


def _local(name: str, prefix: str) -> str:
    return name[len(prefix) + 1 :] if prefix else name


def _mismatch(module: nn.Module, probe: torch.Tensor, units: list, prefix: str) -> str | None:
    steps = {u.name: one_step(u) for u in units}
    removals = layer_removals(units, index_members(units), steps)
    state = MaskedState()
    with preserved_mode(module), torch.no_grad():
        try:
            zero_removed(state, _named(module, prefix), removals)
            masked = module.eval()(probe)
        finally:
            state.restore()
    scratch = copy.deepcopy(module)
    inside = dict(scratch.named_modules())
    expected = _expected_widths(_named(scratch, prefix), removals)
    try:
        graph = build_graph(scratch, probe)
        for unit in units:
            graph.out_group(inside[_local(unit.name, prefix)], list(steps[unit.name])).prune()
        with preserved_mode(scratch), torch.no_grad():
            removed = scratch.eval()(probe)
    except Exception as exc:  # whatever breaks, removing the unit is not its mask
        return f"removing its channels breaks the model ({type(exc).__name__}: {exc})"
    for name, widths in expected.items():
        got = _widths(inside[_local(name, prefix)])
        if got != widths:
            return f"torch-pruning leaves layer {name!r} {got} wide, the table expects {widths}"
    if removed.shape != masked.shape:
        return f"removing its channels changes the output shape to {tuple(removed.shape)}"
    if not (torch.isfinite(masked).all() and torch.isfinite(removed).all()):
        return None  # not comparable; the evaluator reports non-finite outputs itself
    scale = float(masked.abs().max()) + 1e-6
    if not torch.allclose(removed, masked, rtol=_RTOL, atol=_RTOL * scale):
        return (
            "removing its channels gives another output than masking them (torch-pruning "
            "misreads an operation that reorders channels, such as a channel shuffle)"
        )
    return None


def _widths(layer: Any) -> tuple[int, int]:
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    return int(layer.in_channels), int(layer.out_channels)


def _expected_widths(modules: dict[str, nn.Module], removals: dict) -> dict[str, tuple[int, int]]:
    """(input, output) channels of every conv/linear the removals touch, by the table's
    rule: each loses the channels its members name; a depthwise conv's inputs follow
    its outputs."""
    expected = {}
    for name, parts in removals.items():
        layer = modules[name]
        if not isinstance(layer, PRUNABLE_TYPES):
            continue
        c_in, c_out = _widths(layer)
        c_out -= len(set(parts["out"]))
        c_in = c_out if is_depthwise(layer) else c_in - len(set(parts["in"]))
        expected[name] = (c_in, c_out)
    return expected


def _named(module: nn.Module, prefix: str) -> dict[str, nn.Module]:
    """``module``'s submodules by their names in the whole model."""
    if not prefix:
        return dict(module.named_modules())
    return {f"{prefix}.{n}" if n else prefix: m for n, m in module.named_modules()}
