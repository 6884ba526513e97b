"""Searcher checkpoints as data: JSON plus arrays in one zip archive, never a pickle.

A checkpoint holds ``searcher.json`` (history, names, seeds, RNG states as JSON numbers),
``arrays.npz`` (arrays, read with ``numpy.load(allow_pickle=False)``) and, for an RL
searcher, ``agent.zip`` and ``replay_buffer.pkl`` in Stable-Baselines3's own formats.
Reading the JSON and the arrays runs no code from the file: a damaged, foreign or crafted
file is a :class:`CheckpointError` with a one-line message. SB3's agent and replay buffer
use cloudpickle by SB3's design and run code when loaded: a checkpoint of an RL search
(like ``agent.zip``) must come from a trusted source.
"""

from __future__ import annotations

import io
import json
import os
import random
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from prunegym.utils.files import atomic_write_bytes

FORMAT = 2
STATE_FILE = "searcher.json"
ARRAYS_FILE = "arrays.npz"
BLOBS = ("agent.zip", "replay_buffer.pkl")
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed (damaged, foreign, or made by another searcher)."""


@dataclass
class CheckpointState:
    """A searcher's state: JSON-able ``meta``, numeric ``arrays`` and SB3 ``blobs``."""

    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def array(self, name: str, dtype: Any) -> np.ndarray:
        """The array ``name``, which must have ``dtype``'s kind (a ValueError otherwise)."""
        value = self.arrays[name]
        if value.dtype != np.dtype(dtype):
            raise ValueError(f"array {name!r} has dtype {value.dtype}, expected {dtype}")
        return value


def write_checkpoint(path: str | os.PathLike[str], state: CheckpointState) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the previous file)."""
    text = json.dumps({"format": FORMAT, **state.meta}, default=_jsonable)
    arrays = io.BytesIO()
    np.savez(arrays, allow_pickle=False, **state.arrays)

    def write(fh: Any) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(STATE_FILE, text)
            zf.writestr(ARRAYS_FILE, arrays.getvalue())
            for name, blob in state.blobs.items():
                zf.writestr(name, blob)

    atomic_write_bytes(path, write)


def read_checkpoint(path: str | os.PathLike[str]) -> CheckpointState:
    """The state in ``path``; a :class:`CheckpointError` for anything but a valid checkpoint."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            meta = json.loads(zf.read(STATE_FILE))
            with np.load(io.BytesIO(zf.read(ARRAYS_FILE)), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            blobs = {name: zf.read(name) for name in BLOBS if name in names}
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
        raise CheckpointError(
            f"{path} is not a prunegym searcher checkpoint ({one_line(exc)})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}; expected {FORMAT}")
    return CheckpointState(meta, arrays, blobs)


def one_line(exc: BaseException) -> str:
    """``exc`` as one line of text."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON data")


# random number generators ------------------------------------------------------------
def global_rng_state(state: CheckpointState) -> None:
    """Add Python's, NumPy's legacy and torch's global RNG states to ``state``."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state.meta["rng"] = {"python": [version, list(internal), gauss], "numpy": [name, pos,
                         has_gauss, cached]}  # fmt: skip
    state.arrays["numpy_keys"] = np.asarray(keys, dtype=np.uint32)
    state.arrays["torch_rng"] = torch.get_rng_state().numpy()


def restore_global_rng(state: CheckpointState) -> None:
    """Set the global RNGs from ``state`` (all checked before any is set)."""
    version, internal, gauss = state.meta["rng"]["python"]
    if not (isinstance(version, int) and isinstance(internal, list)
            and all(isinstance(i, int) for i in internal)):  # fmt: skip
        raise ValueError("the Python RNG state is not a list of integers")
    name, pos, has_gauss, cached = state.meta["rng"]["numpy"]
    numpy_state = (str(name), state.array("numpy_keys", np.uint32), int(pos), int(has_gauss),
                   float(cached))  # fmt: skip
    torch_state = torch.from_numpy(state.array("torch_rng", np.uint8).copy())
    python_state = (version, tuple(internal), None if gauss is None else float(gauss))
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    torch.set_rng_state(torch_state)


def generator_state(gen: np.random.Generator) -> dict[str, Any]:
    """A NumPy Generator's bit-generator state as JSON data."""
    return json.loads(json.dumps(gen.bit_generator.state, default=_jsonable))


def generator_from_state(data: Any) -> np.random.Generator:
    """A NumPy Generator in the state :func:`generator_state` returned."""
    if not isinstance(data, dict) or data.get("bit_generator") not in _BIT_GENERATORS:
        raise ValueError(f"not a NumPy bit-generator state: {str(data)[:60]!r}")
    bit_generator = getattr(np.random, data["bit_generator"])()
    bit_generator.state = data
    return np.random.Generator(bit_generator)
