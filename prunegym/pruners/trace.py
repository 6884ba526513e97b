"""One forward pass with hooks: every layer call's shapes, and what the layers feed.

A module called more than once (weight sharing) is recorded once per call, so its
MACs count every call. With ``dataflow=True`` the autograd graph of the pass also
tells which conv/linear layers produce the model output (their channels reach it
without passing another conv/linear, whatever lies between: pooling, flatten, norms)
and which depthwise convs read the model input directly (their channels are the
input's, which no unit can remove).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from prunegym.pruners.errors import PruningError
from prunegym.pruners.graph import PRUNABLE_TYPES, preserved_mode


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
    """Per-layer traces, the model output, and (with dataflow) its boundary layers.

    Without dataflow ``output_layers`` holds only the conv/linear layers whose output
    tensor *is* the model output.
    """

    layers: dict[str, LayerTrace]
    output: torch.Tensor
    output_layers: frozenset[str] = frozenset()
    input_layers: frozenset[str] = frozenset()  # depthwise convs fed by the model input


def is_depthwise(module: nn.Module) -> bool:
    """A conv with one input and one output channel per group."""
    return (
        isinstance(module, PRUNABLE_TYPES[:3])
        and module.groups > 1
        and module.groups == module.in_channels == module.out_channels
    )


def trace_forward(
    model: nn.Module, example_input: torch.Tensor, dataflow: bool = False
) -> ForwardTrace:
    """Run ``example_input`` through ``model`` (eval mode, restored after) with hooks."""
    shapes: dict[str, list[tuple[int, ...]]] = {}
    firsts: dict[str, tuple[int, tuple[int, ...]]] = {}
    outputs: dict[str, list[torch.Tensor]] = {}
    nodes: dict[object, str] = {}  # autograd node of a conv/linear call's output -> name
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
            if isinstance(modules[name], PRUNABLE_TYPES):
                outputs.setdefault(name, []).append(output)
                if output.grad_fn is not None:
                    nodes[output.grad_fn] = name

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in leaves]
    dataflow = dataflow and example_input.is_floating_point()
    source = example_input.detach().clone().requires_grad_() if dataflow else example_input
    try:
        with preserved_mode(model), torch.set_grad_enabled(dataflow):
            model.eval()
            try:  # a non-leaf copy of the input: the model may change its input in place
                output = model(source.clone() if dataflow else source)
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
    if not dataflow or output.grad_fn is None:
        return ForwardTrace(layers, output.detach(), frozenset(output_layers))
    reaching, _ = _upstream([output.grad_fn], nodes, source)
    tied = {
        name
        for node, name in nodes.items()
        if is_depthwise(modules[name]) and _upstream(_inputs_of(node), nodes, source)[1]
    }
    return ForwardTrace(layers, output.detach(), frozenset(output_layers | reaching),
                        frozenset(tied))  # fmt: skip


def _inputs_of(node: object) -> list[object]:
    return [nxt for nxt, _ in getattr(node, "next_functions", ()) if nxt is not None]


def _upstream(
    starts: Iterable[object], layer_nodes: dict[object, str], source: torch.Tensor
) -> tuple[set[str], bool]:
    """The layers met first on every autograd path back from ``starts``, and whether
    some path reaches ``source`` (the model input) without meeting a layer."""
    found: set[str] = set()
    reaches_input = False
    stack = list(starts)
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node in layer_nodes:
            found.add(layer_nodes[node])
        elif getattr(node, "variable", None) is source:
            reaches_input = True
        else:
            stack.extend(_inputs_of(node))
    return found, reaches_input
