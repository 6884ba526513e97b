"""Layer widths and analytic cost of a vector of kept counts (well under a millisecond)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunegym.pruners.units import LayerInfo, PrunableUnit


@dataclass(frozen=True)
class Cost:
    """Conv/linear MACs and params (BN, activations and pooling are not counted)."""

    macs: int
    params: int


@dataclass(frozen=True)
class LayerWidths:
    """Input channels, output channels and groups of every layer, in table order."""

    inputs: np.ndarray
    outputs: np.ndarray
    groups: np.ndarray


class CostModel:
    """Vectorised widths and cost of the layers when the units keep some channels.

    For channel pruning a layer's output (input) channels shrink by the channels its
    units remove: ``out' = out - A_out @ removed_fraction``. A depthwise conv's input
    channels and groups follow its output channels; a grouped conv keeps its groups
    (its units remove the same channels in every group).
    """

    def __init__(self, layers: list[LayerInfo], units: list[PrunableUnit], granularity: str):
        self.granularity = granularity
        index = {layer.name: i for i, layer in enumerate(layers)}
        n_layers, n_units = len(layers), len(units)
        self.out0 = np.array([lay.out_channels for lay in layers], dtype=np.float64)
        self.in0 = np.array([lay.in_channels for lay in layers], dtype=np.float64)
        self.groups0 = np.array([lay.groups for lay in layers], dtype=np.float64)
        self.depthwise = np.array([lay.kind == "depthwise" for lay in layers])
        self.kvol = np.array([lay.kernel_volume for lay in layers], dtype=np.float64)
        self.positions = np.array([lay.positions for lay in layers], dtype=np.float64)
        self.bias = np.array([lay.has_bias for lay in layers], dtype=np.float64)
        self.numel0 = np.array([lay.weight_numel for lay in layers], dtype=np.float64)
        self.a_out = np.zeros((n_layers, n_units))
        self.a_in = np.zeros((n_layers, n_units))
        self.unit_layer = np.zeros(n_units, dtype=np.int64)
        for u, unit in enumerate(units):
            self.unit_layer[u] = index.get(unit.name, -1)
            for m in unit.members:
                if m.name in index:
                    target = self.a_out if m.direction == "out" else self.a_in
                    target[index[m.name], u] += len(m.idxs)
        self.channels = np.array([u.channels for u in units], dtype=np.float64)

    def widths(self, kept: np.ndarray) -> LayerWidths:
        """Widths of every layer when unit ``i`` keeps ``kept[i]`` channels."""
        removed = (self.channels - np.asarray(kept, dtype=np.float64)) / self.channels
        out = np.rint(self.out0 - self.a_out @ removed)
        inp = np.where(self.depthwise, out, np.rint(self.in0 - self.a_in @ removed))
        groups = np.where(self.depthwise, out, self.groups0)
        return LayerWidths(inp, out, groups)

    def varying(self) -> tuple[np.ndarray, np.ndarray]:
        """Per layer: whether some unit changes its input channels, its output channels."""
        varies_out = self.a_out.any(axis=1)
        varies_in = np.asarray(np.where(self.depthwise, varies_out, self.a_in.any(axis=1)))
        return varies_in, np.asarray(varies_out)

    def cost(self, kept: np.ndarray) -> Cost:
        kept = np.asarray(kept, dtype=np.float64)
        if self.granularity == "weight":
            numel = self.numel0.copy()
            numel[self.unit_layer] = kept
            out = self.out0
        else:
            w = self.widths(kept)
            out = w.outputs
            numel = out * (w.inputs / w.groups) * self.kvol
        macs = float(numel @ self.positions)
        params = float(numel.sum() + self.bias @ out)
        return Cost(round(macs), round(params))
