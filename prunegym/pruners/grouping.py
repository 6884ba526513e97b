"""Channel units from Torch-Pruning dependency groups, grouped convolutions included.

A grouped conv (``G`` groups, not depthwise) stays valid only if every group keeps
the same channels. As Torch-Pruning does, a unit that feeds or fills one removes the
same positions in every group (``p + g * C / G`` for each ``g``): the unit records
``channel_groups = G`` and its kept count rounds to a multiple of ``G``.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from prunegym.pruners.errors import UnsupportedModelError
from prunegym.pruners.graph import MASKABLE_TYPES, PRUNABLE_TYPES
from prunegym.pruners.trace import is_depthwise
from prunegym.pruners.units import LayerInfo, Member, PrunableUnit, unit_from_layer

Found = tuple[LayerInfo, int, tuple[Member, ...], int, str]  # root, channels, members, G, region


def units_in_graph(
    graph: Any,
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
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=PRUNABLE_TYPES):
        members, problem = _members(graph, group, names)
        owners = [by_name[m.name] for m in members if m.direction == "out" and m.name in by_name]
        if not owners:
            continue
        root = min(owners, key=lambda lay: lay.order)
        channels, groups = len(group[0].idxs), 1
        if problem is None:
            members = _reindex_to(root.name, members)
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
    graph: Any, group: Any, names: dict[nn.Module, str]
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
        if graph.is_out_channel_pruning_fn(dep.handler):
            direction = "out"
        elif graph.is_in_channel_pruning_fn(dep.handler):
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


def _reindex_to(root: str, members: list[Member]) -> list[Member]:
    """Express every member's ``root_idxs`` in the channel indices of layer ``root``."""
    own = next(m for m in members if m.name == root and m.direction == "out")
    to_root = dict(zip(own.root_idxs, own.idxs, strict=True))
    if len(to_root) != len(own.idxs):
        raise UnsupportedModelError(f"layer {root!r} maps its channels ambiguously")
    return [Member(m.name, m.module_type, m.direction, m.idxs,
                   tuple(to_root[r] for r in m.root_idxs)) for m in members]  # fmt: skip
