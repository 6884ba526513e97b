"""Saving, loading and exporting pruned models.

A pruned model is saved as its ordinary ``state_dict`` plus the shape of every
layer and the pruning history, all plain data, so loading is
``torch.load(path, weights_only=True)``: no pickled code runs. The architecture is
rebuilt from a freshly built dense model whose layers are resized to the saved
shapes: the caller's model, the caller's builder, or a builder the file names that is
on the allow-list of :mod:`prunegym.pruners.builders` (nothing else is imported).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunegym.pruners.builders import call_builder, check_builder, resolve_builder
from prunegym.pruners.channel import HISTORY_ATTR
from prunegym.pruners.errors import PruningError
from prunegym.utils.files import atomic_write_bytes

FORMAT = "prunegym-pruned-model"
_SHAPE_ATTRS = ("in_channels", "out_channels", "groups", "in_features", "out_features",
                "num_features")  # fmt: skip


def save_pruned(
    model: nn.Module,
    path: str | os.PathLike,
    builder: str | None = None,
    builder_kwargs: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` (pruned or not) so :func:`load_pruned` can rebuild it.

    ``builder`` names an allow-listed builder (:data:`prunegym.pruners.builders.ALLOWED`)
    that returns the dense architecture when called with ``builder_kwargs``; without
    it, ``load_pruned`` needs ``model=`` or ``builder=``.
    """
    if builder is not None:
        check_builder(builder)
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "shapes": layer_shapes(model),
        "history": json.dumps(getattr(model, HISTORY_ATTR, [])),
        "builder": builder,
        "builder_kwargs": json.dumps(dict(builder_kwargs or {})),
        "meta": json.dumps(dict(meta or {})),
    }
    path = Path(path)
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh))
    return path


def read_pruned(path: str | os.PathLike) -> dict[str, Any]:
    """The saved payload (weights_only), with its JSON fields decoded."""
    path = Path(path)
    if not path.is_file():
        raise PruningError(f"no saved model at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the message of torch's own error invites unsafe loading
        raise PruningError(
            f"{path} is not a readable prunegym model ({type(exc).__name__}): not a torch "
            f"file of tensors and plain data"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PruningError(f"{path} is not a prunegym pruned-model file")
    for key in ("history", "builder_kwargs", "meta"):
        payload[key] = json.loads(payload[key])
    return payload


def load_pruned(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    builder: Callable[..., nn.Module] | None = None,
) -> nn.Module:
    """Rebuild a saved (pruned) model in eval mode.

    The dense architecture comes from ``model`` (a freshly built dense model; copied,
    never modified), else from ``builder`` (a callable, given the builder arguments
    saved in the file), else from the builder the file names, which must be on the
    allow-list of :mod:`prunegym.pruners.builders`: a file never makes prunegym
    import or call anything else.
    """
    payload = read_pruned(path)
    kwargs = payload["builder_kwargs"]
    if model is not None:
        base = copy.deepcopy(model)
    elif builder is not None:
        base = call_builder(builder, kwargs, getattr(builder, "__name__", repr(builder)))
    elif payload["builder"]:
        named = str(payload["builder"])
        base = call_builder(resolve_builder(named), kwargs, repr(named))
    else:
        raise PruningError(
            f"{path} records no builder: pass a freshly built dense model as model= "
            f"or a builder callable as builder="
        )
    resize_like(base, payload["state_dict"], payload["shapes"])
    try:
        base.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise PruningError(f"{path} does not fit this architecture: {exc}") from exc
    setattr(base, HISTORY_ATTR, payload["history"])
    return base.eval()


def layer_shapes(model: nn.Module) -> dict[str, dict[str, int]]:
    """The size attributes of every layer (``in_channels``, ``out_features``, ...): what
    :func:`resize_like` sets on a freshly built dense model besides its tensors."""
    shapes = {
        name: {a: int(getattr(m, a)) for a in _SHAPE_ATTRS if isinstance(getattr(m, a, None), int)}
        for name, m in model.named_modules()
    }
    return {k: v for k, v in shapes.items() if v}


def resize_like(model: nn.Module, state: Mapping[str, torch.Tensor], shapes: Mapping) -> None:
    """Give every parameter and buffer of ``model`` (in place) the shape it has in
    ``state`` and every layer the size attributes of ``shapes`` (:func:`layer_shapes`
    of the pruned model), so ``model.load_state_dict(state)`` fits."""
    modules = dict(model.named_modules())
    for key, saved in state.items():
        owner_name, _, attr = key.rpartition(".")
        owner = modules.get(owner_name)
        if owner is None:
            continue
        current = getattr(owner, attr, None)
        if not isinstance(current, torch.Tensor) or current.shape == saved.shape:
            continue
        fresh = torch.empty(saved.shape, dtype=current.dtype, device=current.device)
        if isinstance(current, nn.Parameter):
            setattr(owner, attr, nn.Parameter(fresh, requires_grad=current.requires_grad))
        else:
            owner.register_buffer(attr, fresh)
    for name, attrs in shapes.items():
        if name in modules:
            for attr, value in attrs.items():
                setattr(modules[name], attr, value)


def export_onnx(
    model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike, opset: int = 18
) -> Path:
    """Export ``model`` to ONNX (dynamic batch size), written atomically."""
    path = Path(path)
    model = copy.deepcopy(model).eval().cpu()
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model, (example_input.cpu(),), str(target), input_names=["input"],
            output_names=["logits"], opset_version=opset,
            dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
            external_data=False, verbose=False,
        )  # fmt: skip
        atomic_write_bytes(path, lambda fh: fh.write(target.read_bytes()))
    return path


def onnx_max_abs_diff(path: str | os.PathLike, model: nn.Module, inputs: torch.Tensor) -> float:
    """Largest |onnxruntime - torch| output difference on ``inputs`` (needs onnxruntime)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ort_out,) = session.run(None, {"input": inputs.cpu().numpy()})
    with torch.no_grad():
        ref = copy.deepcopy(model).eval().cpu()(inputs.cpu()).numpy()
    return float(abs(ort_out - ref).max())
