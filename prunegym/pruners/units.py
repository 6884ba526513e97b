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

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.name for m in self.members))
