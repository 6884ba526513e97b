"""Fashion-MNIST from its four IDX files (gzip or not); nothing is ever downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from prunegym.experiments.data.pools import TensorPool
from prunegym.experiments.data.registry import (
    LoadedData,
    LoadRequest,
    candidate_dirs,
    register_dataset,
)
from prunegym.experiments.data.transforms import TensorTransform

__all__ = ["FASHION_MNIST_SYSTEM_DIR", "find_fashion_mnist"]

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_MEAN, _STD = (0.2860,), (0.3530,)
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find_idx(directory: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")  # the MNIST website's "train-images.idx3-ubyte"
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def find_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Locate the four Fashion-MNIST IDX files (gz or not); the error says where it looked."""
    dirs = candidate_dirs(data_dir, ("fashion-mnist", "FashionMNIST/raw"), FASHION_MNIST_SYSTEM_DIR)
    for d in dirs:
        found = {key: _find_idx(d, stem) for key, stem in _FILES.items()}
        present = {k: p for k, p in found.items() if p is not None}
        if len(present) == len(_FILES):
            return present
        if present:
            missing = [_FILES[k] + "[.gz]" for k, p in found.items() if p is None]
            raise FileNotFoundError(
                f"Fashion-MNIST in {d} is incomplete: missing {', '.join(missing)}"
            )
    raise FileNotFoundError(
        f"Fashion-MNIST not found; looked in {', '.join(map(str, dirs))} for "
        f"{', '.join(s + '[.gz]' for s in _FILES.values())}. Get it with "
        f"`apt-get install dataset-fashion-mnist` (installs {FASHION_MNIST_SYSTEM_DIR}) or "
        "download the four files from https://github.com/zalandoresearch/fashion-mnist and pass "
        "--data-dir DIR (or set PRUNEGYM_DATA=DIR)"
    )


def _read_checked(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """The four arrays, checked: uint8 images (N, H, W), matching labels in 0..9."""
    from prunegym.experiments.idx import IDXError, read_idx

    parts = {key: read_idx(path) for key, path in paths.items()}
    for part in ("train", "test"):
        images, labels = parts[f"{part}_images"], parts[f"{part}_labels"]
        ipath, lpath = paths[f"{part}_images"], paths[f"{part}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IDXError(
                f"{ipath}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise IDXError(
                f"{lpath}: {labels.shape} labels do not match {len(images)} images in {ipath}"
            )
        if len(labels) and (labels.min() < 0 or labels.max() > 9):
            raise IDXError(f"{lpath}: labels outside 0..9")
    if parts["train_images"].shape[1:] != parts["test_images"].shape[1:]:
        raise IDXError(f"{paths['test_images']}: image size differs from {paths['train_images']}")
    return parts


@register_dataset(
    "fashion-mnist",
    "Fashion-MNIST from the four IDX files (--data-dir, $PRUNEGYM_DATA, "
    f"{FASHION_MNIST_SYSTEM_DIR})",
    options=("augment",),
)
def load_fashion_mnist(request: LoadRequest) -> LoadedData:
    """Train files at ``[0, 60000)``, test files after them; crop (2 px) and flip augmentation."""
    augment = bool(request.options.get("augment", True))
    paths = find_fashion_mnist(request.data_dir)
    parts = _read_checked(paths)
    images = torch.from_numpy(np.concatenate([parts["train_images"], parts["test_images"]]))
    labels = torch.from_numpy(
        np.concatenate([parts["train_labels"], parts["test_labels"]]).astype(np.int64)
    )
    train_t = TensorTransform(_MEAN, _STD, 1 / 255, crop_padding=2 if augment else 0, flip=augment)
    return LoadedData(
        TensorPool(images.unsqueeze(1), labels), len(parts["train_labels"]), True, 10, 1,
        tuple(images.shape[1:]), _MEAN, _STD, train_t, TensorTransform(_MEAN, _STD, 1 / 255),
        augment, {"data_dir": str(paths["train_images"].parent), "augment": augment},
    )  # fmt: skip
