"""Checkpoints of zoo models: state_dict + plain metadata, written atomically.

A checkpoint is ``{"format": ..., "state_dict": ..., "metadata": ...}`` saved with
``torch.save``; metadata is JSON-able (model name and arguments, dataset description,
metrics, prunegym version), so ``torch.load(weights_only=True)`` reads it back and
``Checkpoint.build_model()`` rebuilds the network. Files are written to a temporary file
in the target directory and moved into place with ``os.replace``: a crash never leaves
a half-written checkpoint behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunegym.utils.files import atomic_write_bytes

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "atomic_write",
    "load_checkpoint",
    "prunegym_version",
    "save_checkpoint",
    "write_json",
]

CHECKPOINT_FORMAT = "prunegym.checkpoint/1"


def prunegym_version() -> str:
    """The installed prunegym version ("unknown" when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prunegym")
    except PackageNotFoundError:
        return "unknown"


atomic_write = atomic_write_bytes  # one implementation: prunegym.pruners.io


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (fails before touching ``path`` if not JSON)."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


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
        """``{"name", "in_channels", "num_classes"}``: the arguments of ``build_model``."""
        return dict(self.metadata["model"])

    def build_model(self) -> nn.Module:
        """Rebuild the zoo model and load the weights (strictly), in eval mode on the CPU."""
        from prunegym.experiments.models import build_model

        spec = self.model_spec
        model = build_model(spec["name"], spec["in_channels"], spec["num_classes"])
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ValueError(f"{self.path}: weights do not fit {spec['name']}: {first}") from None
        return model.eval()


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    model_name: str,
    in_channels: int,
    num_classes: int,
    dataset: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model``'s weights (on CPU) and metadata to ``path`` atomically.

    ``dataset`` is usually ``DataSplits.describe()``; ``metrics`` and ``extra`` any plain
    JSON data (test accuracy, training history, the command line ...).
    """
    metadata = {
        "model": {"name": model_name, "in_channels": in_channels, "num_classes": num_classes},
        "dataset": _plain(dict(dataset or {}), "dataset"),
        "metrics": _plain(dict(metrics or {}), "metrics"),
        "extra": _plain(dict(extra or {}), "extra"),
        "prunegym_version": prunegym_version(),
        "torch_version": str(torch.__version__),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    blob = {"format": CHECKPOINT_FORMAT, "state_dict": state, "metadata": metadata}
    return atomic_write(path, lambda fh: torch.save(blob, fh))


def load_checkpoint(path: str | os.PathLike[str], map_location: str = "cpu") -> Checkpoint:
    """Load a checkpoint with ``weights_only=True``; a file that is not one is a ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        reason = next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[0])
        raise ValueError(f"{path} is not a readable prunegym checkpoint: {reason}") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a prunegym checkpoint (format {CHECKPOINT_FORMAT})")
    return Checkpoint(dict(blob["state_dict"]), dict(blob["metadata"]), path)
