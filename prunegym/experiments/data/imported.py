"""Datasets from the user's own function: ``build_data("package.module:function", **options)``.

The function is called with the options (and ``data_dir`` when one is given) and returns
either a :class:`DataSplits` (it owns its split) or a tuple ``(train, reward_val, test)``
of map-style datasets, ``reward_val`` and ``test`` possibly ``None``: prunegym then
carves ``reward_val`` out of ``train`` with ``seed`` (see ``DataSplits.from_datasets``).
Importing the function a config names is the user's own intent (see
:mod:`prunegym.experiments.user_code`).
"""

from __future__ import annotations

import dataclasses
import os
from types import MappingProxyType
from typing import Any

from prunegym.experiments.config import ConfigError
from prunegym.experiments.data.splits import DataSplits
from prunegym.experiments.user_code import call_function, load_function

__all__ = ["build_imported"]


def build_imported(
    path: str,
    reward_val_size: int | None,
    seed: int,
    data_dir: str | os.PathLike[str] | None,
    options: dict[str, Any],
) -> DataSplits:
    """The splits of dataset function ``path``; wrong return types are a one-line ConfigError."""
    kwargs = dict(options)
    if data_dir is not None:
        kwargs["data_dir"] = str(data_dir)
    result = call_function(load_function(path, "dataset"), path, "dataset", kwargs)
    if isinstance(result, DataSplits):
        if reward_val_size is not None and reward_val_size != result.reward_val_size:
            raise ConfigError(
                f"dataset {path} returned splits with {result.reward_val_size} reward_val "
                f"samples, but reward_val_size is {reward_val_size}"
            )
        data = result
    elif isinstance(result, tuple) and len(result) == 3:
        train, reward_val, test = result
        try:
            data = DataSplits.from_datasets(
                train, reward_val, test, reward_val_size=reward_val_size, seed=seed, name=path
            )
        except ValueError as exc:
            raise ConfigError(f"dataset {path}: {exc}") from None
    else:
        raise ConfigError(
            f"dataset {path} returned {_kind(result)}; expected a DataSplits or a tuple "
            "(train, reward_val, test) of datasets (reward_val and test may be None)"
        )
    # Recorded so that build_data_like (a checkpoint, a run directory) calls it again.
    return dataclasses.replace(data, name=path, options=MappingProxyType(kwargs))


def _kind(obj: Any) -> str:
    if isinstance(obj, tuple):
        return f"a tuple of {len(obj)}"
    return "None" if obj is None else repr(type(obj).__name__)
