"""``build_data``: a registered dataset by name, split three ways; ``build_data_like`` replays it.

Every dataset is one pool of samples with a global index space. Datasets that ship a
separate test set (Fashion-MNIST, CIFAR-10, ImageFolder with ``train/`` and ``val/``) put
the training files at ``[0, n_train)`` and the test files after them; the others (digits,
synthetic, a flat ImageFolder) carve a fixed 20% test slice out of the pool with a
constant seed, so the test set never changes with the split seed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from prunegym.experiments.data.custom import IN_MEMORY_SOURCES
from prunegym.experiments.data.imported import build_imported
from prunegym.experiments.data.registry import LoadedData, LoadRequest, dataset_entry
from prunegym.experiments.data.splits import (
    SPLITS,
    DataSplits,
    SplitDataset,
    carve_reward_val,
    check_reward_val_size,
    fixed_test_slice,
)
from prunegym.experiments.data.transforms import (
    AdaptedTransform,
    ImageFormat,
    ImageOptions,
    adapted_format,
)
from prunegym.experiments.user_code import is_import_path

__all__ = ["build_data", "build_data_like"]


def build_data(
    name: str,
    reward_val_size: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    **options: Any,
) -> DataSplits:
    """Load dataset ``name`` and split it into train / reward_val / test.

    ``seed`` picks which training samples go to ``reward_val`` (same seed, same split);
    ``reward_val_size`` defaults to 10% of the training part, at most 5000. ``data_dir``
    is where the files are (see each dataset); nothing is downloaded unless ``download``.
    Options: ``augment`` (fashion-mnist, cifar10, imagefolder), ``image_size``
    (imagefolder: resize and centre-crop), ``shape``/``num_classes``/``size`` (synthetic);
    every dataset takes the image options of :class:`ImageOptions` (``image_size``,
    ``resize``, ``channels``, ``mean``, ``std``), e.g. Fashion-MNIST for a 3x32x32 model:
    ``build_data("fashion-mnist", image_size=32, channels=3)``.

    ``name`` may also be ``package.module:function``: your own dataset function, called
    with ``options`` (and ``data_dir`` when given); see
    :mod:`~prunegym.experiments.data.imported`.
    """
    if is_import_path(name):
        if download:
            raise ValueError(f"dataset {name} cannot be downloaded (only cifar10 can)")
        return build_imported(name, reward_val_size, seed, data_dir, dict(options))
    entry = dataset_entry(name)
    if download and not entry.downloadable:
        raise ValueError(f"dataset {name!r} cannot be downloaded (only cifar10 can)")
    options = dict(options)
    image = ImageOptions.take(options, keep=entry.options)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise ValueError(f"dataset {entry.name!r} does not take option(s) {', '.join(unknown)}")
    loaded = entry.loader(LoadRequest(data_dir, download, options))
    return split_loaded(entry.name, adapt(loaded, image, entry.name), reward_val_size, seed)


def adapt(loaded: LoadedData, image: ImageOptions, name: str) -> LoadedData:
    """``loaded`` with its transforms fitted to the image options (itself when none is set)."""
    if image.is_identity():
        return loaded
    native = ImageFormat(loaded.in_channels, loaded.image_size, loaded.mean, loaded.std)
    out = adapted_format(native, image, name)
    return dataclasses.replace(
        loaded,
        in_channels=out.channels,
        image_size=out.size,
        mean=out.mean,
        std=out.std,
        train_transform=AdaptedTransform(loaded.train_transform, native, out, image.resize),
        eval_transform=AdaptedTransform(loaded.eval_transform, native, out, image.resize),
        options={**loaded.options, **image.record()},
    )


def split_loaded(
    name: str, loaded: LoadedData, reward_val_size: int | None, seed: int
) -> DataSplits:
    """The three splits of a loaded pool (see the module docstring)."""
    if loaded.has_test:
        train_pool = np.arange(loaded.n_train_pool)
        test_idx = np.arange(loaded.n_train_pool, len(loaded.pool))
    else:
        train_pool, test_idx = fixed_test_slice(len(loaded.pool))
    size = check_reward_val_size(reward_val_size, len(train_pool), name)
    if len(test_idx) == 0:
        raise ValueError(f"dataset {name} has no test samples")
    train_idx, reward_idx = carve_reward_val(train_pool, size, seed)

    def make(idx: np.ndarray, split: str, augment: bool) -> SplitDataset:
        transform = loaded.train_transform if augment else loaded.eval_transform
        return SplitDataset(loaded.pool, idx, split, transform, augment)

    train = make(train_idx, "train", loaded.augment)
    return DataSplits(
        name=name,
        train=train,
        reward_val=make(reward_idx, "reward_val", False),
        test=make(test_idx, "test", False),
        num_classes=loaded.num_classes,
        in_channels=loaded.in_channels,
        image_size=loaded.image_size,
        mean=loaded.mean,
        std=loaded.std,
        seed=int(seed),
        reward_val_size=size,
        options=MappingProxyType(dict(loaded.options)),
        plain_train=make(train_idx, "train", False) if loaded.augment else train,
    )


def build_data_like(
    description: Mapping[str, Any], data_dir: str | os.PathLike[str] | None = None
) -> DataSplits:
    """Rebuild the splits that ``DataSplits.describe()`` recorded (e.g. in a checkpoint).

    ``data_dir`` defaults to the recorded one when it still exists, else the usual search.
    Raises ``ValueError`` when the rebuilt split sizes differ from the recorded ones, which
    would mean ``reward_val`` is no longer held out of what the model was trained on.
    """
    try:
        name, seed, size = description["name"], description["seed"], description["reward_val_size"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a dataset description (missing {exc})") from None
    options = dict(description.get("options", {}))
    if options.get("source") in IN_MEMORY_SOURCES:
        raise ValueError(
            f"dataset {name!r} was built from in-memory {options['source']} "
            "(DataSplits.from_tensors / from_datasets): it cannot be rebuilt from its description"
        )
    recorded_dir = options.pop("data_dir", None)
    if data_dir is None and recorded_dir is not None and Path(recorded_dir).is_dir():
        data_dir = recorded_dir
    data = build_data(name, reward_val_size=size, seed=seed, data_dir=data_dir, **options)
    sizes = description.get("sizes")
    actual = {s: len(data.split(s)) for s in SPLITS}
    if sizes is not None and dict(sizes) != actual:
        raise ValueError(f"{name} splits now have sizes {actual}, recorded {dict(sizes)}")
    return data
