"""A latency lookup measured once on the current device, for the latency target.

An approximation, documented as such: every conv/linear layer is timed alone, on its
own input shape, at a small grid of input x output channel counts. The model's latency
at a vector of kept counts is the measured dense latency scaled by
``(rest + sum of layer lookups at the pruned widths) / (rest + sum at the dense widths)``,
where ``rest`` is the dense latency not spent in the timed layers (never negative). The
ratio form keeps the estimate positive and makes it insensitive to a machine that was
uniformly busier while the layers were timed than while the model was. BN, activations,
pooling and interactions between layers (caches, fusion) are not modelled, which is why
the environment also measures the final policy's real latency.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from prunegym.pruners import LayerTable, measure_latency
from prunegym.pruners.trace import trace_forward
from prunegym.pruners.units import LayerInfo

DEFAULT_LEVELS = (0.125, 0.25, 0.5, 0.75, 1.0)


@dataclass
class _LayerLookup:
    index: int  # row in the layer matrices
    ins: np.ndarray  # grid of input channels (ascending)
    outs: np.ndarray  # grid of output channels (ascending)
    ms: np.ndarray  # (len(ins), len(outs)) milliseconds, non-decreasing along both axes
    dense_ms: float

    def lookup(self, c_in: float, c_out: float) -> float:
        return _bilinear(self.ins, self.outs, self.ms, c_in, c_out)


def _axis(grid: np.ndarray, x: float) -> tuple[int, int, float]:
    if len(grid) == 1:
        return 0, 0, 0.0
    x = min(max(x, float(grid[0])), float(grid[-1]))  # below the grid: its smallest (safe)
    j = int(np.searchsorted(grid, x, side="right")) - 1
    j = min(max(j, 0), len(grid) - 2)
    w = (x - grid[j]) / (grid[j + 1] - grid[j])
    return j, j + 1, float(w)


def _bilinear(ins: np.ndarray, outs: np.ndarray, ms: np.ndarray, a: float, b: float) -> float:
    i0, i1, wi = _axis(ins, a)
    o0, o1, wo = _axis(outs, b)
    top = ms[i0, o0] * (1 - wo) + ms[i0, o1] * wo
    bottom = ms[i1, o0] * (1 - wo) + ms[i1, o1] * wo
    return float(top * (1 - wi) + bottom * wi)


class LatencyTable:
    """Estimated latency (ms) of ``model`` pruned to a vector of kept channel counts."""

    def __init__(
        self,
        model: nn.Module,
        table: LayerTable,
        example_input: torch.Tensor,
        *,
        levels: Sequence[float] = DEFAULT_LEVELS,
        threads: int | None = None,
        warmup: int = 3,
        repeats: int = 10,
        dense_repeats: int = 30,
    ) -> None:
        if table.granularity != "channel":
            raise ValueError(
                "a latency target needs channel pruning (weight sparsity is not faster)"
            )
        if not levels or min(levels) <= 0 or max(levels) > 1:
            raise ValueError(f"latency levels must be fractions in (0, 1], got {tuple(levels)}")
        start = time.perf_counter()
        self.threads, self.warmup, self.repeats = threads, warmup, repeats
        self.example_input = example_input
        self.dense = measure_latency(
            model, example_input, threads=threads, warmup=warmup, repeats=dense_repeats
        )
        self.dense_ms = self.dense.median_ms
        self.table = table
        layers = list(table.layers)
        varies_in, varies_out = table.varying_layers()
        traces = trace_forward(model, example_input).layers
        modules = dict(model.named_modules())
        self.lookups: list[_LayerLookup] = []
        for i, lay in enumerate(layers):
            if not (varies_in[i] or varies_out[i]):
                continue  # this layer's widths never change: constant, cancels out
            shape = traces[lay.name].input_shape
            own_inputs = bool(varies_in[i]) and lay.kind != "depthwise"  # else they follow out
            self.lookups.append(self._measure(i, lay, modules[lay.name], shape, levels,
                                              own_inputs, bool(varies_out[i])))  # fmt: skip
        self._layers_dense = sum(lk.dense_ms for lk in self.lookups)
        self._rest = max(self.dense_ms - self._layers_dense, 0.0)
        if self._rest + self._layers_dense <= 0:
            self._rest = 1.0  # nothing varies: every estimate is the dense latency
        self.seconds = time.perf_counter() - start

    def _measure(
        self,
        i: int,
        lay: LayerInfo,
        module: nn.Module,
        input_shape: tuple[int, ...],
        levels: Sequence[float],
        varies_in: bool,
        varies_out: bool,
    ) -> _LayerLookup:
        step = 1 if lay.kind == "depthwise" else lay.groups  # a grouped conv keeps its groups

        def grid(full: int, varies: bool) -> np.ndarray:
            if not varies:
                return np.array([full], dtype=np.float64)
            counts = {max(step, round(f * full / step) * step) for f in levels} | {full}
            return np.array(sorted(counts), dtype=np.float64)

        ins, outs = grid(lay.in_channels, varies_in), grid(lay.out_channels, varies_out)
        ms = np.zeros((len(ins), len(outs)))
        param = next(module.parameters())
        for a, c_in in enumerate(ins):
            for b, c_out in enumerate(outs):
                c_in_eff = int(c_out) if lay.kind == "depthwise" else int(c_in)
                layer = _resized(module, c_in_eff, int(c_out), lay.kind == "depthwise")
                layer = layer.to(device=param.device, dtype=param.dtype)
                shape = list(input_shape)
                shape[-1 if isinstance(module, nn.Linear) else 1] = c_in_eff
                x = torch.randn(shape, device=param.device, dtype=param.dtype)
                ms[a, b] = measure_latency(
                    layer, x, threads=self.threads, warmup=self.warmup, repeats=self.repeats
                ).median_ms
        # monotone in both widths: each entry becomes the minimum over the entries at least
        # as wide, so a slow outlier (a busy machine) cannot inflate every wider entry
        ms = np.minimum.accumulate(ms[::-1, ::-1], axis=0)
        ms = np.minimum.accumulate(ms, axis=1)[::-1, ::-1]
        return _LayerLookup(i, ins, outs, ms, float(ms[-1, -1]))

    def widths(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(input, output) channels of every layer when unit ``i`` keeps ``kept[i]``."""
        widths = self.table.layer_widths(kept)
        return widths.inputs, widths.outputs

    def estimate(self, kept: np.ndarray) -> float:
        """Estimated milliseconds per forward pass of the example batch."""
        inp, out = self.widths(kept)
        pruned = sum(lk.lookup(inp[lk.index], out[lk.index]) for lk in self.lookups)
        return self.dense_ms * (self._rest + pruned) / (self._rest + self._layers_dense)


def _resized(module: nn.Module, c_in: int, c_out: int, depthwise: bool) -> nn.Module:
    """A fresh layer like ``module`` with ``c_in`` inputs and ``c_out`` outputs."""
    if isinstance(module, nn.Linear):
        return nn.Linear(c_in, c_out, bias=module.bias is not None)
    conv = module
    assert isinstance(conv, nn.modules.conv._ConvNd)
    conv_class: Any = type(conv)  # the same conv class (1d/2d/3d) at the new widths
    return conv_class(
        c_in, c_out, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        c_out if depthwise else conv.groups, conv.bias is not None, conv.padding_mode,
    )  # fmt: skip
