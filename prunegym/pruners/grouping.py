"""Channel units from Torch-Pruning dependency groups, grouped convolutions included.

Units come from the dependency graph of the whole model or, where Torch-Pruning
cannot trace it, of its largest traceable submodules (:mod:`prunegym.pruners.regions`).
A grouped conv (``G`` groups, not depthwise) stays valid only if every group keeps
the same channels. As Torch-Pruning does, a unit that feeds or fills one removes the
same positions in every group (``p + g * C / G`` for each ``g``): the unit records
``channel_groups = G`` and its kept count rounds to a multiple of ``G``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunegym.pruners.graph import MASKABLE_TYPES, PRUNABLE_TYPES, GuardedGraph, build_graph
from prunegym.pruners.regions import traceable_parts
from prunegym.pruners.trace import is_depthwise, trace_forward
from prunegym.pruners.units import LayerInfo, Member, PrunableUnit, unit_from_layer
from prunegym.pruners.verify import unfaithful_units

Found = tuple[LayerInfo, int, tuple[Member, ...], int, str]  # root, channels, members, G, region


@dataclass(frozen=True)
class _Part:
    """The units of one traceable part ("" for the whole model) and what it froze."""

    region: str
    input_shape: tuple[int, ...]
    found: list[Found]
    frozen: dict[str, str]


def channel_units(
    model: nn.Module,
    example_input: torch.Tensor,
    layers: list[LayerInfo],
    frozen: dict[str, str],
) -> tuple[list[PrunableUnit], dict[str, tuple[int, ...]]]:
    """The channel units of ``model`` and the input shape of every region that holds
    some (``frozen`` gains the reasons of what is left out)."""
    names = {m: n for n, m in model.named_modules()}
    by_name = {lay.name: lay for lay in layers}

    def attempt(region: str, module: nn.Module, x: torch.Tensor) -> _Part:
        local = dict(frozen)
        if region:
            _freeze_region_boundaries(region, module, x, local)
        found = units_in_graph(build_graph(module, x), module, names, by_name, local, region)
        found = _faithful(region, module, x, found, by_name, local)
        return _Part(region, tuple(x.shape), found, local)

    parts, outside = traceable_parts(model, example_input, attempt)
    found_all: list[Found] = []
    shapes = {}
    for part in parts:
        frozen.update(part.frozen)
        found_all += part.found
        if part.found and part.region:
            shapes[part.region] = part.input_shape
    for name, why in outside.items():
        frozen.setdefault(name, why)
    return make_units(found_all, by_name), shapes


def _freeze_region_boundaries(
    region: str, module: nn.Module, x: torch.Tensor, frozen: dict[str, str]
) -> None:
    flow = trace_forward(module, x, dataflow=True)
    for n in sorted(flow.output_layers):
        frozen.setdefault(f"{region}.{n}", f"produces the output of {region}, a part "
                          f"torch-pruning traces only on its own")  # fmt: skip
    for n in sorted(flow.input_layers):
        frozen.setdefault(f"{region}.{n}", f"depthwise conv on the input of {region} "
                          f"(its channels come from outside it)")  # fmt: skip


def _faithful(
    region: str,
    module: nn.Module,
    x: torch.Tensor,
    found: list[Found],
    by_name: dict[str, LayerInfo],
    frozen: dict[str, str],
) -> list[Found]:
    """The units whose removal equals their mask (see :mod:`prunegym.pruners.verify`)."""
    units = [unit_from_layer(lay, 0, "channel", channels, members, by_name, groups, region)
             for lay, channels, members, groups, _ in found]  # fmt: skip
    problems = unfaithful_units(module, x, units, region)
    frozen.update(problems)
    return [item for item in found if item[0].name not in problems]


def units_in_graph(
    graph: GuardedGraph,
    scope: nn.Module,
    names: dict[nn.Module, str],
    by_name: dict[str, LayerInfo],
    frozen: dict[str, str],
    region: str = "",
) -> list[Found]:
    """The channel units of one dependency graph (over ``scope``), frozen ones left out.

    A group is left out, with the reason under its first layer in ``frozen``, when it
    touches a layer that cannot be masked exactly or a grouped conv it cannot keep
    consistent.
    """
    modules = {names[m]: m for m in scope.modules() if m in names}
    ignored = [modules[n] for n in frozen if n in modules]
    found: list[Found] = []
    for group in graph.groups(ignored, PRUNABLE_TYPES):
        members, problem = _members(graph, group, names)
        channels, groups = len(group[0].idxs), 1
        owners = [by_name[m.name] for m in members if m.direction == "out" and m.name in by_name
                  and _owns_all(m, channels)]  # fmt: skip
        if not owners:
            continue
        root = min(owners, key=lambda lay: lay.order)
        if problem is None:
            members = _reindex_to(root.name, members)
            problem = _uneven(members, channels)
        if problem is None:
            groups, problem = _channel_groups(members, channels, modules)
        if problem is not None:
            frozen[root.name] = problem
            continue
        found.append((root, channels, tuple(members), groups, region))
    return found


def make_units(found: list[Found], by_name: dict[str, LayerInfo]) -> list[PrunableUnit]:
    """Units in forward execution order of their root layers."""
    found = sorted(found, key=lambda item: item[0].order)
    return [unit_from_layer(lay, i, "channel", ch, mem, by_name, groups, region)
            for i, (lay, ch, mem, groups, region) in enumerate(found)]  # fmt: skip


def _members(
    graph: GuardedGraph, group: Any, names: dict[nn.Module, str]
) -> tuple[list[Member], str | None]:
    members: list[Member] = []
    problem = None
    for item in group.items:
        dep = item.dep
        module = dep.target.module
        if not isinstance(module, nn.Module) or module not in names:
            if isinstance(module, nn.Parameter):
                problem = "contains a bare nn.Parameter"
            continue  # parameter-free ops (add, flatten, ...) carry no weights
        name = names[module]
        if graph.is_out(dep.handler):
            direction = "out"
        elif graph.is_in(dep.handler):
            direction = "in"
        else:
            continue
        has_params = any(True for _ in module.parameters(recurse=False))
        if has_params and not isinstance(module, MASKABLE_TYPES):
            problem = f"contains {type(module).__name__} {name!r}, which cannot be masked exactly"
        members.append(Member(name, type(module).__name__, direction,  # type: ignore[arg-type]
                              tuple(int(i) for i in item.idxs),
                              tuple(int(i) for i in item.root_idxs)))  # fmt: skip
    return members, problem


def _channel_groups(
    members: list[Member], channels: int, modules: dict[str, nn.Module]
) -> tuple[int, str | None]:
    """The group count ``G`` the unit must respect (1 without grouped convs), or why not."""
    groups = 1
    for m in members:
        module = modules.get(m.name)
        if not isinstance(module, PRUNABLE_TYPES[:3]) or module.groups == 1:
            continue
        if is_depthwise(module):
            continue
        g = module.groups
        name = f"grouped conv {m.name!r} (groups={g})"
        if g == module.out_channels:  # Torch-Pruning would treat it as depthwise
            return 0, f"{name} has one output but {module.in_channels // g} inputs per group"
        width = module.out_channels if m.direction == "out" else module.in_channels
        identity = all(i == r for i, r in zip(m.idxs, m.root_idxs, strict=True))
        if not (width == channels == len(m.idxs) and identity):
            return 0, f"{name} shares the unit's channels in a different order"
        groups = math.lcm(groups, g)
    return groups, None


def _uneven(members: list[Member], channels: int) -> str | None:
    """Why the unit's cost would depend on which channels go, if it would: a layer that
    holds only some of its channels (a slice or split). A layer after a flatten holds
    each channel several times, as many times each, which keeps the cost exact."""
    for m in members:
        times = Counter(m.root_idxs)
        if len(times) != channels or len(set(times.values())) != 1:
            return (
                f"layer {m.name!r} holds only part of its channels (a slice or split), so "
                f"its cost would depend on which channels go"
            )
    return None


def _owns_all(member: Member, channels: int) -> bool:
    """Whether ``member`` holds every channel of its group, each once (a possible root;
    a concatenation's inputs hold only some)."""
    return len(member.idxs) == channels == len(set(member.root_idxs)) == len(set(member.idxs))


def _reindex_to(root: str, members: list[Member]) -> list[Member]:
    """Express every member's ``root_idxs`` in the channel indices of layer ``root``."""
    own = next(m for m in members if m.name == root and m.direction == "out")
    to_root = dict(zip(own.root_idxs, own.idxs, strict=True))
    return [Member(m.name, m.module_type, m.direction, m.idxs,
                   tuple(to_root[r] for r in m.root_idxs)) for m in members]  # fmt: skip
