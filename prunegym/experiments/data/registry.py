"""The dataset registry: name -> loader, filled by :func:`register_dataset`.

A loader turns a :class:`LoadRequest` into a :class:`LoadedData`: one pool of samples
whose first ``n_train_pool`` indices are the training part (and the rest a separate
test set when ``has_test``), with its transforms. Splitting is not the loader's job.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from prunegym.experiments.data.pools import Pool

__all__ = [
    "DATASETS",
    "DatasetEntry",
    "LoadRequest",
    "LoadedData",
    "candidate_dirs",
    "dataset_entry",
    "dataset_names",
    "register_dataset",
]


@dataclass(frozen=True)
class LoadRequest:
    """Where to look and what the caller asked for (``options``: only declared names)."""

    data_dir: str | os.PathLike[str] | None
    download: bool
    options: dict[str, Any]


@dataclass(frozen=True)
class LoadedData:
    """One pool, where its training part ends, and how to turn samples into tensors."""

    pool: Pool
    n_train_pool: int  # [0, n_train_pool) is the training part
    has_test: bool  # [n_train_pool, len(pool)) is a separate test set
    num_classes: int
    in_channels: int
    image_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_transform: Callable[[Any], torch.Tensor]
    eval_transform: Callable[[Any], torch.Tensor]
    augment: bool
    options: dict[str, Any]  # recorded by DataSplits.describe(), replayed by build_data_like


Loader = Callable[[LoadRequest], LoadedData]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its loader, a one-line description and the options it takes."""

    name: str
    loader: Loader
    description: str
    options: tuple[str, ...] = ()
    downloadable: bool = False


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str, description: str, *, options: tuple[str, ...] = (), downloadable: bool = False
) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader`` under ``name`` (lower case; a name is registered once)."""

    def decorator(loader: Loader) -> Loader:
        key = name.lower()
        if key in DATASETS:
            raise ValueError(f"dataset {key!r} is already registered")
        DATASETS[key] = DatasetEntry(key, loader, description, tuple(options), downloadable)
        return loader

    return decorator


def dataset_names() -> list[str]:
    """Every registered name ``build_data`` accepts."""
    return list(DATASETS)


def dataset_entry(name: str) -> DatasetEntry:
    """The entry of ``name`` (case-insensitive); an unknown name lists the known ones."""
    entry = DATASETS.get(name.lower())
    if entry is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return entry


def candidate_dirs(
    data_dir: str | os.PathLike[str] | None, subdirs: tuple[str, ...], system: Path | None
) -> list[Path]:
    """Where to look: the explicit dir only, else ``$PRUNEGYM_DATA``, then the system dir."""
    roots: list[Path] = []
    if data_dir is not None:
        roots = [Path(data_dir).expanduser()]
    else:
        env = os.environ.get("PRUNEGYM_DATA")
        if env:
            roots.append(Path(env).expanduser())
        if system is not None:
            roots.append(system)
    dirs: list[Path] = []
    for root in roots:
        for sub in ("", *subdirs):
            d = root / sub if sub else root
            if d not in dirs:
                dirs.append(d)
    return dirs
