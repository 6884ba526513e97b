"""Checkpoints: state_dict + plain metadata, written atomically; weights from any source.

A checkpoint is ``{"format": ..., "state_dict": ..., "metadata": ...}`` saved with
``torch.save``; metadata is JSON-able (model name and arguments, dataset description,
metrics, prunegym version), so ``torch.load(weights_only=True)`` reads it back and
``Checkpoint.build_model()`` rebuilds the network. Files are written to a temporary file
in the target directory and moved into place with ``os.replace``: a crash never leaves
a half-written checkpoint behind.

:func:`load_weights` loads weights into a model the caller built from a plain
``state_dict`` file, a training checkpoint with a ``state_dict`` key, or one of ours;
everything is read with ``weights_only=True`` (no code in a weights file ever runs).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunegym.utils.files import atomic_write_bytes

__all__ = [
    "CHECKPOINT_FORMAT",
    "STATE_DICT_KEYS",
    "Checkpoint",
    "WeightsFile",
    "check_fits",
    "load_checkpoint",
    "load_weights",
    "prunegym_version",
    "read_weights",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "prunegym.checkpoint/1"


def prunegym_version() -> str:
    """``prunegym.__version__``: the one source (pyproject.toml reads it from there too)."""
    import prunegym

    return prunegym.__version__


def _plain(obj: Any, where: str) -> Any:
    """Check that metadata is plain JSON data (what ``weights_only=True`` can load)."""
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {where} must be plain JSON data: {exc}") from None


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the state_dict, its metadata and where it came from."""

    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    path: Path

    @property
    def model_spec(self) -> dict[str, Any]:
        """``{"name", "in_channels", "num_classes"}`` (and ``"kwargs"`` when the model was
        built with keywords): the arguments of ``build_model``."""
        return dict(self.metadata["model"])

    def build_model(self, trusted_code: Collection[str] = ()) -> nn.Module:
        """Rebuild the model and load the weights (strictly), in eval mode on the CPU.

        A checkpoint of a pruned model records its layers' sizes (``shapes``): the dense
        architecture is built, then resized to them before the weights are loaded. A model
        recorded as ``package.module:function`` is imported only when it is in
        ``trusted_code`` (the caller's own ``workload.model``): the file is data."""
        from prunegym.experiments.models import build_model
        from prunegym.experiments.user_code import check_trusted
        from prunegym.pruners.io import resize_like

        spec = self.model_spec
        check_trusted(spec["name"], trusted_code, str(self.path), "workload.model")
        model = build_model(
            spec["name"], spec.get("in_channels"), spec.get("num_classes"),
            **dict(spec.get("kwargs") or {}),
        )  # fmt: skip
        if self.metadata.get("shapes"):
            resize_like(model, self.state_dict, self.metadata["shapes"])
        check_fits(model, self.state_dict, f"{self.path}: weights do not fit {spec['name']}")
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    model_name: str,
    in_channels: int | None = None,
    num_classes: int | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    dataset: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    pruned: bool = False,
) -> Path:
    """Save ``model``'s weights (on CPU) and metadata to ``path`` atomically.

    ``model_name``, ``in_channels``, ``num_classes`` and ``model_kwargs`` are what
    ``build_model`` needs to rebuild it (``None``: not passed; an import-path model gets
    only what its function takes). ``dataset`` is usually ``DataSplits.describe()``;
    ``metrics`` and ``extra`` any plain JSON data (test accuracy, history, command line).
    ``pruned``: ``model`` is the named architecture with fewer channels; its layer sizes
    are recorded (``shapes``) so :meth:`Checkpoint.build_model` rebuilds it.
    """
    from prunegym.pruners.io import layer_shapes

    spec: dict[str, Any] = {"name": model_name, "in_channels": in_channels,
                            "num_classes": num_classes}  # fmt: skip
    if model_kwargs:
        spec["kwargs"] = _plain(dict(model_kwargs), "model_kwargs")
    metadata = {
        "model": spec,
        "dataset": _plain(dict(dataset or {}), "dataset"),
        "metrics": _plain(dict(metrics or {}), "metrics"),
        "extra": _plain(dict(extra or {}), "extra"),
        **({"shapes": layer_shapes(model)} if pruned else {}),
        "prunegym_version": prunegym_version(),
        "torch_version": str(torch.__version__),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    blob = {"format": CHECKPOINT_FORMAT, "state_dict": state, "metadata": metadata}
    return atomic_write_bytes(path, lambda fh: torch.save(blob, fh))


def _torch_load(path: Path, what: str, map_location: str) -> Any:
    """``torch.load(weights_only=True)``; a missing or unreadable file is one line."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any parse failure of a corrupt or foreign file (no code runs)
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        reason = next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[0])
        pickled = re.search(r"Unsupported global: GLOBAL (\S+)", reason)
        if pickled:  # a pickled object (a whole nn.Module, say): code, not weights
            reason = (
                f"it holds a pickled {pickled.group(1)}, not plain weights; save "
                "torch.save(model.state_dict(), path) instead"
            )
        raise ValueError(f"{path} is not a readable {what}: {reason}") from None


def load_checkpoint(path: str | os.PathLike[str], map_location: str = "cpu") -> Checkpoint:
    """Load a checkpoint with ``weights_only=True``; a file that is not one is a ValueError."""
    path = Path(path)
    blob = _torch_load(path, "prunegym checkpoint", map_location)
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a prunegym checkpoint (format {CHECKPOINT_FORMAT})")
    return Checkpoint(dict(blob["state_dict"]), dict(blob["metadata"]), path)


# ----------------------------------------------------------------------------- any weights

#: Keys under which training checkpoints keep the model's weights.
STATE_DICT_KEYS = ("state_dict", "model_state_dict")


@dataclass(frozen=True)
class WeightsFile:
    """The weights in a file: ``kind`` is ``prunegym`` (``metadata`` set), ``training``
    (a checkpoint dict with a ``state_dict`` key) or ``state_dict`` (a plain one)."""

    state_dict: dict[str, torch.Tensor]
    kind: str
    metadata: dict[str, Any] | None
    path: Path


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def read_weights(path: str | os.PathLike[str], map_location: str = "cpu") -> WeightsFile:
    """The state_dict in ``path`` (read with ``weights_only=True``), whatever its wrapping."""
    path = Path(path)
    blob = _torch_load(path, "weights file", map_location)
    if isinstance(blob, Mapping) and blob.get("format") == CHECKPOINT_FORMAT:
        return WeightsFile(dict(blob["state_dict"]), "prunegym", dict(blob["metadata"]), path)
    if isinstance(blob, Mapping):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(blob.get(key)):
                return WeightsFile(dict(blob[key]), "training", None, path)
    if _is_state_dict(blob) and blob:
        return WeightsFile(dict(blob), "state_dict", None, path)
    raise ValueError(
        f"{path} holds no weights: expected a state_dict (torch.save(model.state_dict(), "
        f"path)), a checkpoint with a 'state_dict' key or a prunegym checkpoint, got {_kind(blob)}"
    )


def _kind(blob: Any) -> str:
    if isinstance(blob, Mapping):
        keys = ", ".join(repr(k) for k in list(blob)[:5])
        return f"a dict with keys {keys}" if keys else "an empty dict"
    return f"a {type(blob).__name__}"


def check_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a one-line ``ValueError`` naming the first key where the weights do not fit."""
    own = model.state_dict()
    for key, value in own.items():
        if key not in state_dict:
            hint = ""
            if f"module.{key}" in state_dict:
                hint = " (saved from DataParallel? its keys start with 'module.')"
            raise ValueError(f"{source}: no weights for {key!r}{hint}")
        theirs = state_dict[key]
        if tuple(theirs.shape) != tuple(value.shape):
            raise ValueError(
                f"{source}: {key!r} has shape {tuple(theirs.shape)}, the model's is "
                f"{tuple(value.shape)}"
            )
    extra = next((k for k in state_dict if k not in own), None)
    if extra is not None:
        raise ValueError(f"{source}: unexpected key {extra!r} (the model has no such entry)")


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load the weights in ``path`` into ``model`` (strictly) and return the model.

    ``path`` is a plain ``state_dict`` file, a training checkpoint that keeps it under
    ``state_dict`` (or ``model_state_dict``), or a checkpoint of ``prunegym train``; it is
    read with ``weights_only=True``. A missing file, a file without weights and weights
    that do not fit (the first mismatching key is named) are one-line errors, raised
    before the model is touched.
    """
    weights = read_weights(path)
    check_fits(model, weights.state_dict, f"{weights.path} does not fit the model")
    model.load_state_dict(weights.state_dict, strict=True)
    return model
