"""Thin, checked access to Torch-Pruning's dependency graph.

Known facts about torch-pruning 1.6 handled here: ``build_dependency`` leaves the
model in eval mode (we restore the caller's mode), and some architectures (channel
shuffle) fail to trace (we raise :class:`UnsupportedModelError` naming the model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch_pruning as tp
from torch import nn

from prunegym.pruners.errors import UnsupportedModelError

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
