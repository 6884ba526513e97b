"""One forward pass with hooks: every layer call's shapes.

A module called more than once (weight sharing) is recorded once per call, so its
MACs count every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunegym.pruners.errors import PruningError
from prunegym.pruners.graph import preserved_mode


@dataclass(frozen=True)
class LayerTrace:
    """What one forward pass shows about a module: first call order, shapes of each call."""

    order: int
    input_shape: tuple[int, ...]  # of the first call
    output_shapes: tuple[tuple[int, ...], ...]  # one per call

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.output_shapes[0]

    @property
    def calls(self) -> int:
        return len(self.output_shapes)


@dataclass(frozen=True)
class ForwardTrace:
    """Per-layer traces, the model output, and the layers whose output is that output."""

    layers: dict[str, LayerTrace]
    output: torch.Tensor
    output_layers: frozenset[str] = frozenset()


def trace_forward(model: nn.Module, example_input: torch.Tensor) -> ForwardTrace:
    """Run ``example_input`` through ``model`` (eval mode, restored after) with hooks."""
    shapes: dict[str, list[tuple[int, ...]]] = {}
    firsts: dict[str, tuple[int, tuple[int, ...]]] = {}
    outputs: dict[str, list[torch.Tensor]] = {}
    modules = dict(model.named_modules())
    leaves = [n for n, m in modules.items() if n and not list(m.children())]

    def hook(name: str):
        def record(_module: nn.Module, inputs: tuple, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                return
            if name not in firsts:
                first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
                firsts[name] = (len(firsts), tuple(first.shape) if first is not None else ())
            shapes.setdefault(name, []).append(tuple(output.shape))
            outputs.setdefault(name, []).append(output)

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in leaves]
    try:
        with preserved_mode(model), torch.no_grad():
            model.eval()
            try:
                output = model(example_input)
            except Exception as exc:
                raise PruningError(
                    f"the example input of shape {tuple(example_input.shape)} does not run "
                    f"through {type(model).__name__}: {type(exc).__name__}: {exc}"
                ) from exc
    finally:
        for h in handles:
            h.remove()
    if not isinstance(output, torch.Tensor):
        raise PruningError(
            f"{type(model).__name__} returned {type(output).__name__}; prunegym needs a "
            f"model whose forward returns one tensor"
        )
    layers = {n: LayerTrace(firsts[n][0], firsts[n][1], tuple(s)) for n, s in shapes.items()}
    output_layers = {n for n, outs in outputs.items() if any(o is output for o in outs)}
    return ForwardTrace(layers, output, frozenset(output_layers))
