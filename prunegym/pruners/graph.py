"""Thin, checked access to Torch-Pruning's dependency graph and to forward tracing.

Known facts about torch-pruning 1.6 handled here: ``build_dependency`` leaves the
model in eval mode (we restore the caller's mode), and some architectures (channel
shuffle) fail to trace (we raise :class:`UnsupportedModelError` naming the model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from prunegym.pruners.errors import PruningError, UnsupportedModelError

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""Layers whose weights prunegym prunes and whose MACs and params it counts."""

MASKABLE_TYPES = (*PRUNABLE_TYPES, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
"""Layers whose output channels a reversible mask can zero exactly (dim 0 of each param)."""


@contextlib.contextmanager
def preserved_mode(model: nn.Module) -> Iterator[None]:
    """Restore the training flag of every submodule on exit."""
    modes = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


def build_graph(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    """Build a Torch-Pruning dependency graph without changing the model's mode."""
    with preserved_mode(model), torch.enable_grad():
        try:
            return tp.DependencyGraph().build_dependency(model, example_input, verbose=False)
        except Exception as exc:  # torch-pruning raises bare exceptions on untraceable ops
            raise UnsupportedModelError(
                f"torch-pruning could not build the dependency graph of "
                f"{type(model).__name__} ({type(exc).__name__}: {exc}); operations such as "
                f"channel shuffle are not supported for channel pruning"
            ) from exc


@dataclass(frozen=True)
class LayerTrace:
    """What one forward pass shows about a module: order, input and output shapes."""

    order: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def trace_forward(
    model: nn.Module, example_input: torch.Tensor
) -> tuple[dict[str, LayerTrace], torch.Tensor, set[str]]:
    """Run one forward pass with hooks; return per-module traces, the output and the
    names of the layers whose output is the model output itself."""
    traces: dict[str, LayerTrace] = {}
    outputs: dict[str, torch.Tensor] = {}
    handles = []

    def hook(name: str):
        def record(_module: nn.Module, inputs: tuple, output: object) -> None:
            if name in traces or not isinstance(output, torch.Tensor):
                return
            in_shape = (
                tuple(inputs[0].shape) if inputs and isinstance(inputs[0], torch.Tensor) else ()
            )
            traces[name] = LayerTrace(len(traces), in_shape, tuple(output.shape))
            outputs[name] = output

        return record

    for name, module in model.named_modules():
        if name and not list(module.children()):
            handles.append(module.register_forward_hook(hook(name)))
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
    output_layers = {name for name, out in outputs.items() if out is output}
    return traces, output, output_layers
