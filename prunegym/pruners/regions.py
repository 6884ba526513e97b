"""Where Torch-Pruning cannot trace a whole model, the largest submodules it can.

ShuffleNet's channel shuffle and Swin's window attention defeat Torch-Pruning's
dependency graph of the whole model. Their submodules (a ShuffleNet branch, a Swin
block) trace fine on their own, so each becomes a *region*: a submodule called with
one tensor whose units remove only channels that stay inside it. Its input channels
and the layers producing its output are frozen (they meet the operation that cannot
be traced), and its units are checked like all units (:mod:`prunegym.pruners.verify`).

A list of blocks (a ``Sequential`` or ``ModuleList`` whose children hold submodules
of their own) is tried block by block, not whole: Torch-Pruning re-infers every
reshape of a graph for each group it walks, so a stage of Swin blocks costs tens of
seconds where its blocks one by one cost a fraction of one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from prunegym.pruners.errors import UnsupportedModelError
from prunegym.pruners.graph import PRUNABLE_TYPES, preserved_mode

T = TypeVar("T")
Attempt = Callable[[str, nn.Module, torch.Tensor], T]


def capture_inputs(model: nn.Module, example_input: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input of every submodule whose first call passes exactly one tensor."""
    inputs: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            one_tensor = len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor)
            if one_tensor and name not in inputs:
                inputs[name] = args[0].detach().clone()

        return record

    handles = [m.register_forward_pre_hook(hook(n), with_kwargs=True)
               for n, m in model.named_modules() if n]  # fmt: skip
    try:
        with preserved_mode(model), torch.no_grad():
            model.eval()
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    return inputs


def traceable_parts(
    model: nn.Module, example_input: torch.Tensor, attempt: Attempt[T]
) -> tuple[list[T], dict[str, str]]:
    """``attempt`` on the whole model, else on the largest submodules it succeeds on.

    ``attempt(name, module, input)`` raises :class:`UnsupportedModelError` when it
    cannot handle a part. Returns the results and, for every conv/linear layer left in
    no part, the reason (the failure of the smallest part that held it).
    """
    try:
        return [attempt("", model, example_input)], {}
    except UnsupportedModelError as exc:
        top = str(exc)
    inputs = capture_inputs(model, example_input)
    results: list[T] = []
    outside: dict[str, str] = {}

    def descend(prefix: str, parent: nn.Module, reason: str) -> None:
        for child_name, child in parent.named_children():
            name = f"{prefix}.{child_name}" if prefix else child_name
            if not any(isinstance(m, PRUNABLE_TYPES) for m in child.modules()):
                continue
            why = reason
            if name in inputs and not _is_block_list(child):
                try:
                    results.append(attempt(name, child, inputs[name]))
                    continue
                except UnsupportedModelError as exc:
                    why = str(exc)
            if isinstance(child, PRUNABLE_TYPES):
                outside[name] = f"in no part torch-pruning can trace ({why})"
            descend(name, child, why)

    descend("", model, top)
    return results, outside


def _is_block_list(module: nn.Module) -> bool:
    children = list(module.children())
    return isinstance(module, (nn.Sequential, nn.ModuleList)) and any(
        list(child.children()) for child in children
    )
