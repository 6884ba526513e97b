"""LayerTable: the ordered prunable units of a model and their analytic cost."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

from prunegym.pruners.cost import Cost, CostModel, LayerWidths
from prunegym.pruners.errors import PruningError
from prunegym.pruners.graph import PRUNABLE_TYPES
from prunegym.pruners.grouping import channel_units
from prunegym.pruners.rounding import channel_steps, kept_channels, kept_weights
from prunegym.pruners.trace import LayerTrace, trace_forward
from prunegym.pruners.units import Kind, LayerInfo, Member, PrunableUnit, unit_from_layer

if TYPE_CHECKING:
    from prunegym.pruners.policy import PruningPolicy

Granularity = Literal["channel", "weight"]


@dataclass(frozen=True, eq=False)
class LayerTable:
    """The ordered prunable units of a model, its total cost, and what is frozen."""

    granularity: Granularity
    units: tuple[PrunableUnit, ...]
    layers: tuple[LayerInfo, ...]
    frozen: dict[str, str]  # layer or group name -> why it is not a unit
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    signature: str
    regions: dict[str, tuple[int, ...]]  # submodule -> its input shape, where units live
    _cost_model: CostModel = field(repr=False)

    # construction -----------------------------------------------------------------
    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        example_input: torch.Tensor,
        granularity: Granularity = "channel",
        ignored: Iterable[nn.Module | str] = (),
    ) -> LayerTable:
        """Find the prunable units of ``model`` by running ``example_input`` through it.

        Channel units are Torch-Pruning dependency groups ordered by the forward
        execution of their first layer; the layers producing the model output (found
        by what reaches it: a classifier conv followed by pooling counts) are never
        channel-pruned. ``ignored`` layers (modules or names) are never pruned either.
        The model is not modified (its training mode is restored).
        """
        if granularity not in ("channel", "weight"):
            raise PruningError(f"granularity must be 'channel' or 'weight', got {granularity!r}")
        if not isinstance(example_input, torch.Tensor):
            raise PruningError("example_input must be a torch.Tensor batch")
        names = {m: n for n, m in model.named_modules()}
        ignored_names = {names.get(x, "<not in model>") if isinstance(x, nn.Module) else str(x)
                         for x in ignored}  # fmt: skip
        unknown = sorted(n for n in ignored_names if n not in names.values())
        if unknown:
            raise PruningError(f"ignored layer {unknown[0]!r} is not a module of the model")
        trace = trace_forward(model, example_input, dataflow=granularity == "channel")
        output = trace.output
        layers = _layer_infos(model, trace.layers)
        if not layers:
            raise PruningError(f"{type(model).__name__} has no conv or linear layer to prune")
        frozen = {n: "ignored by the user" for n in sorted(ignored_names)}
        regions: dict[str, tuple[int, ...]] = {}
        if granularity == "weight":
            units = _weight_units(layers, set(ignored_names))
        else:
            for n in sorted(trace.output_layers):
                frozen.setdefault(n, "produces the model output")
            for n in sorted(trace.input_layers):
                frozen.setdefault(
                    n, "a depthwise conv on the model input (its channels are the input's)"
                )
            units, regions = channel_units(model, example_input, layers, frozen)
        if not units:
            reasons = "; ".join(f"{n}: {why}" for n, why in list(frozen.items())[:3])
            raise PruningError(
                f"{type(model).__name__} has no prunable unit ({granularity})"
                + (f"; frozen {reasons}" if reasons else "")
            )
        digest = hashlib.sha1(
            repr([granularity, [(u.name, u.channels) for u in units]]).encode()
        ).hexdigest()[:12]
        return cls(granularity, tuple(units), tuple(layers), frozen,
                   tuple(example_input.shape), tuple(output.shape), digest, regions,
                   CostModel(layers, units, granularity))  # fmt: skip

    # container --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.units)

    def __iter__(self) -> Iterator[PrunableUnit]:
        return iter(self.units)

    def __getitem__(self, key: int | str) -> PrunableUnit:
        if isinstance(key, str):
            for unit in self.units:
                if unit.name == key:
                    return unit
            raise KeyError(f"no prunable unit named {key!r}")
        return self.units[key]

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.units]

    @property
    def channels(self) -> np.ndarray:
        """Prunable elements per unit (channels, or weights for weight granularity)."""
        return self._cost_model.channels.astype(np.int64)

    # cost -------------------------------------------------------------------------
    @property
    def total(self) -> Cost:
        """The unpruned model's conv/linear MACs and params."""
        return Cost(sum(lay.macs for lay in self.layers), sum(lay.params for lay in self.layers))

    @property
    def total_macs(self) -> int:
        return self.total.macs

    @property
    def total_params(self) -> int:
        return self.total.params

    @property
    def channel_groups(self) -> np.ndarray:
        """Per unit: the groups of the grouped conv it must keep consistent (1 if none)."""
        return np.array([u.channel_groups for u in self.units], dtype=np.int64)

    def steps(self, round_to: int = 8) -> np.ndarray:
        """Per unit: the multiple its kept count rounds to (1 for weight granularity)."""
        if self.granularity == "weight":
            return np.ones(len(self.units), dtype=np.int64)
        return channel_steps(round_to, self.channel_groups)

    def kept_counts(self, sparsities: np.ndarray, round_to: int = 8) -> np.ndarray:
        """Kept channels (or weights) per unit for per-unit ``sparsities``."""
        if self.granularity == "weight":
            return kept_weights(self.channels, sparsities)
        return kept_channels(self.channels, sparsities, round_to, self.channel_groups)

    def layer_widths(self, kept: np.ndarray) -> LayerWidths:
        """Input/output channels and groups of every layer (``self.layers`` order) when
        unit ``i`` keeps ``kept[i]`` channels: the one width rule of cost and latency."""
        return self._cost_model.widths(kept)

    def varying_layers(self) -> tuple[np.ndarray, np.ndarray]:
        """Per layer of ``self.layers``: whether a unit changes its inputs, its outputs."""
        return self._cost_model.varying()

    def cost_of_kept(self, kept: np.ndarray) -> Cost:
        """MACs and params when unit ``i`` keeps ``kept[i]`` channels (or weights)."""
        return self._cost_model.cost(kept)

    def cost(self, policy: PruningPolicy) -> Cost:
        """Analytic cost of ``policy``: no model is touched."""
        return self.cost_of_kept(self.kept_counts(policy.as_array(self), policy.round_to))

    def macs(self, policy: PruningPolicy | None = None) -> int:
        return self.total_macs if policy is None else self.cost(policy).macs

    def params(self, policy: PruningPolicy | None = None) -> int:
        return self.total_params if policy is None else self.cost(policy).params

    def summary(self) -> str:
        """A human-readable table of the units."""
        rows = [f"{'#':>3} {'unit':<32} {'kind':<9} {'ch':>6} {'MACs':>12} {'layers':>6}"]
        for u in self.units:
            rows.append(f"{u.index:>3} {u.name:<32} {u.kind:<9} {u.channels:>6} "
                        f"{u.macs:>12,} {len(u.layer_names):>6}")  # fmt: skip
        total = self.total
        rows.append(
            f"total MACs {total.macs:,}  params {total.params:,}  frozen {len(self.frozen)}"
        )
        return "\n".join(rows)


def count_cost(model: nn.Module, example_input: torch.Tensor) -> Cost:
    """Count conv/linear MACs and params of ``model`` by running it (a reference count)."""
    layers = _layer_infos(model, trace_forward(model, example_input).layers)
    return Cost(sum(lay.macs for lay in layers), sum(lay.params for lay in layers))


# ---------------------------------------------------------------------------------
def _layer_infos(model: nn.Module, traces: dict[str, LayerTrace]) -> list[LayerInfo]:
    """One LayerInfo per executed conv/linear; ``positions`` sums over all its calls."""
    infos = []
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES) or name not in traces:
            continue
        trace = traces[name]
        if isinstance(module, nn.Linear):
            positions = sum(math.prod(s[1:-1]) if len(s) > 2 else 1 for s in trace.output_shapes)
            info = LayerInfo(name, "linear", module.in_features, module.out_features, (), (), 1,
                             tuple(trace.output_shape[1:-1]), positions, module.bias is not None,
                             trace.order)  # fmt: skip
        else:
            depthwise = (
                module.groups > 1 and module.groups == module.in_channels == module.out_channels
            )
            kind: Kind = "depthwise" if depthwise else "conv"
            positions = sum(math.prod(s[2:]) for s in trace.output_shapes)
            info = LayerInfo(name, kind, module.in_channels, module.out_channels,
                             tuple(module.kernel_size), tuple(module.stride), module.groups,
                             tuple(trace.output_shape[2:]), positions, module.bias is not None,
                             trace.order)  # fmt: skip
        infos.append(info)
    return sorted(infos, key=lambda lay: lay.order)


def _weight_units(layers: list[LayerInfo], ignored: set[str]) -> list[PrunableUnit]:
    by_name = {lay.name: lay for lay in layers}
    units: list[PrunableUnit] = []
    for lay in layers:
        if lay.name in ignored:
            continue
        member = Member(lay.name, lay.kind, "out", (), ())
        units.append(unit_from_layer(lay, len(units), "weight", lay.weight_numel,
                                      (member,), by_name))  # fmt: skip
    return units
