"""Static facts about a model's layers and its prunable units."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["conv", "depthwise", "linear"]
Direction = Literal["out", "in"]


@dataclass(frozen=True)
class LayerInfo:
    """One conv or linear layer as executed on the example input."""

    name: str
    kind: Kind
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    groups: int
    feature_map: tuple[int, ...]  # output spatial size of the first call (() for flat linear)
    positions: int  # output positions per sample, summed over calls (weight sharing)
    has_bias: bool
    order: int  # forward execution index

    @property
    def kernel_volume(self) -> int:
        return math.prod(self.kernel) if self.kernel else 1

    @property
    def weight_numel(self) -> int:
        return self.out_channels * (self.in_channels // self.groups) * self.kernel_volume

    @property
    def params(self) -> int:
        return self.weight_numel + (self.out_channels if self.has_bias else 0)

    @property
    def macs(self) -> int:
        return self.weight_numel * self.positions


@dataclass(frozen=True)
class Member:
    """A layer touched by a unit: which of its channels go when the unit's channels go.

    ``idxs[i]`` is the layer's channel (output channel for ``direction == "out"``, input
    channel for ``"in"``) removed together with the unit's channel ``root_idxs[i]``.
    """

    name: str
    module_type: str
    direction: Direction
    idxs: tuple[int, ...]
    root_idxs: tuple[int, ...]

    def removed(self, root_removed: np.ndarray) -> list[int]:
        """This layer's channel indices that go when the unit removes ``root_removed``."""
        hit = np.isin(np.asarray(self.root_idxs), root_removed)
        return [i for i, h in zip(self.idxs, hit, strict=True) if h]


@dataclass(frozen=True)
class PrunableUnit:
    """One decision of the agent.

    For channel granularity it is a dependency group: the coupled channels of a
    residual stage are one unit, and a depthwise conv rides with its producer. For
    weight granularity it is one conv or linear weight. The fields describe the root
    layer (the first executed layer whose outputs the unit removes).

    ``channel_groups`` is ``G > 1`` when the unit feeds or fills a grouped conv with
    ``G`` groups: the unit then removes the same positions in every group (channel
    ``p + g * channels / G`` for each ``g``), so its kept count is a multiple of ``G``.
    ``region`` names the submodule whose dependency graph holds the unit ("" for the
    whole model; a submodule when Torch-Pruning cannot trace the whole model).
    """

    name: str
    index: int
    granularity: Literal["channel", "weight"]
    kind: Kind
    channels: int  # prunable elements: channels (channel) or weights (weight)
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    groups: int
    feature_map: tuple[int, ...]
    macs: int  # MACs of the layers whose outputs this unit removes
    params: int
    consumer_macs: int  # MACs of the layers that consume this unit's channels
    consumer_params: int
    members: tuple[Member, ...] = field(repr=False)
    channel_groups: int = 1
    region: str = ""

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.name for m in self.members))


def unit_from_layer(
    layer: LayerInfo,
    index: int,
    granularity: str,
    channels: int,
    members: tuple[Member, ...],
    by_name: dict[str, LayerInfo],
    channel_groups: int = 1,
    region: str = "",
) -> PrunableUnit:
    """A unit rooted at ``layer``; its cost fields sum the layers its members touch."""
    own = {m.name for m in members if m.direction == "out"}
    consumers = {m.name for m in members if m.direction == "in"} - own
    pick = [by_name[n] for n in own if n in by_name]
    cons = [by_name[n] for n in consumers if n in by_name]
    return PrunableUnit(
        name=layer.name, index=index, granularity=granularity, kind=layer.kind,  # type: ignore[arg-type]
        channels=channels, in_channels=layer.in_channels, out_channels=layer.out_channels,
        kernel=layer.kernel, stride=layer.stride, groups=layer.groups,
        feature_map=layer.feature_map,
        macs=sum(x.macs for x in pick), params=sum(x.params for x in pick),
        consumer_macs=sum(x.macs for x in cons), consumer_params=sum(x.params for x in cons),
        members=members, channel_groups=channel_groups, region=region,
    )  # fmt: skip
