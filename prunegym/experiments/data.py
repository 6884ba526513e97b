"""Datasets by name, with deterministic, disjoint train / reward_val / test splits.

Every dataset is one *pool* of samples with a global index space. Datasets that ship a
separate test set (Fashion-MNIST, CIFAR-10, ImageFolder with ``train/`` and ``val/``) put
the training files at ``[0, n_train)`` and the test files after them; the others (digits,
synthetic, a flat ImageFolder) carve a fixed 20% test slice out of the pool with a
constant seed, so the test set never changes with the split seed.

``reward_val`` is drawn from the training part with ``seed`` and removed from ``train``:
the search's reward reads it, training never does, and ``test`` is for final reports only.
Every split keeps its global indices (``DataSplits.indices``) so later code can assert
that an evaluator never touches the test set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "DATASETS",
    "FASHION_MNIST_SYSTEM_DIR",
    "SPLITS",
    "DataSplits",
    "SplitDataset",
    "build_data",
    "build_data_like",
    "dataset_names",
    "default_reward_val_size",
]

SPLITS = ("train", "reward_val", "test")
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_TEST_FRACTION = 0.2  # test slice of datasets without their own test files
_TEST_SEED = 0x7E57  # constant: the test slice does not move with the split seed
_SYNTHETIC_SEED = 0x5EED  # constant: the synthetic tensors do not move with the split seed


def default_reward_val_size(n_train_pool: int) -> int:
    """10% of the training pool, at most 5000 (so 5000 for Fashion-MNIST and CIFAR-10)."""
    return max(1, min(5000, round(0.1 * n_train_pool)))


# ----------------------------------------------------------------------------- pools


class _TensorPool:
    """All samples in memory: images ``(N, C, H, W)`` (uint8 or float) and int64 labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def raw(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def label_array(self) -> np.ndarray:
        return self.labels.numpy()


class _FilePool:
    """Image files on disk, read with PIL on access (ImageFolder)."""

    def __init__(self, samples: list[tuple[str, int]]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def raw(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as img:
            return img.convert("RGB"), label

    def label_array(self) -> np.ndarray:
        return np.array([label for _, label in self.samples], dtype=np.int64)


class _TensorTransform:
    """uint8/float image tensor -> normalised float tensor, with optional crop/flip.

    Works on one sample ``(C, H, W)`` or a batch ``(N, C, H, W)`` (augmentation: one sample).
    """

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        scale: float,
        crop_padding: int = 0,
        flip: bool = False,
    ) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.scale = scale
        self.crop_padding = crop_padding
        self.flip = flip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32) * self.scale
        if self.crop_padding:
            p = self.crop_padding
            h, w = x.shape[-2:]
            padded = F.pad(x, (p, p, p, p))
            top, left = torch.randint(0, 2 * p + 1, (2,)).tolist()
            x = padded[..., top : top + h, left : left + w]
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return (x - self.mean) / self.std


class SplitDataset(Dataset):
    """One split of a pool: a torch Dataset of ``(image, label)`` over global ``indices``."""

    def __init__(
        self,
        pool: _TensorPool | _FilePool,
        indices: np.ndarray,
        split: str,
        transform: Callable[[Any], torch.Tensor],
        augment: bool,
    ) -> None:
        self.pool = pool
        self.indices = indices
        self.split = split
        self.transform = transform
        self.augment = augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.pool.raw(int(self.indices[i]))
        return self.transform(x), y

    def __repr__(self) -> str:
        return f"SplitDataset({self.split!r}, n={len(self)}, augment={self.augment})"


# ----------------------------------------------------------------------------- the bundle


@dataclass(frozen=True, eq=False)
class DataSplits:
    """A dataset split three ways, plus what models and the search need to know about it.

    ``train`` yields augmented samples (where the dataset has augmentation); ``reward_val``
    and ``test`` never do. ``indices[split]`` are the global pool indices of each split.
    """

    name: str
    train: SplitDataset
    reward_val: SplitDataset
    test: SplitDataset
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    seed: int
    reward_val_size: int
    options: Mapping[str, Any] = field(default_factory=dict)
    _plain_train: SplitDataset | None = field(default=None, repr=False)

    @property
    def indices(self) -> Mapping[str, np.ndarray]:
        """Global pool indices of each split (read-only arrays)."""
        return MappingProxyType({s: self.split(s).indices for s in SPLITS})

    def __deepcopy__(self, memo: dict) -> DataSplits:
        """Immutable: a deep copy (as Gymnasium's env checker makes) is the object itself."""
        return self

    @property
    def example_input(self) -> torch.Tensor:
        """A one-sample batch ``(1, C, H, W)`` from ``train`` (never from test), no augmentation."""
        return self.plain("train")[0][0].unsqueeze(0)

    def split(self, name: str) -> SplitDataset:
        """The dataset of split ``name`` (``train``, ``reward_val`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
        return getattr(self, name)

    def plain(self, name: str) -> SplitDataset:
        """Split ``name`` without augmentation (for calibration and measuring train accuracy)."""
        if name == "train" and self._plain_train is not None:
            return self._plain_train
        return self.split(name)

    def loader(
        self,
        split: str,
        batch_size: int = 128,
        shuffle: bool | None = None,
        seed: int = 0,
        *,
        augment: bool | None = None,
        num_workers: int = 0,
        drop_last: bool = False,
        pin_memory: bool = False,
    ) -> DataLoader:
        """A DataLoader over ``split``; shuffles (seeded) and augments by default only for train."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shuffle = split == "train" if shuffle is None else shuffle
        augment = split == "train" if augment is None else augment
        dataset = self.split(split) if augment else self.plain(split)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(seed) if shuffle else None,
            num_workers=num_workers,
            drop_last=drop_last,
            pin_memory=pin_memory,
        )

    def calibration_batches(
        self, n: int, batch_size: int = 64, seed: int = 0
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` batches ``(x, y)`` of distinct un-augmented train samples, drawn with ``seed``."""
        train = self.plain("train")
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if n * batch_size > len(train):
            raise ValueError(
                f"{n} calibration batches of {batch_size} need {n * batch_size} samples; "
                f"train has {len(train)}"
            )
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        batches = []
        for b in range(n):
            items = [train[int(i)] for i in order[b * batch_size : (b + 1) * batch_size]]
            xs, ys = zip(*items, strict=True)
            batches.append((torch.stack(xs), torch.tensor(ys, dtype=torch.int64)))
        return batches

    def tensors(self, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``limit`` samples of ``split`` (all by default), un-augmented, as tensors."""
        ds = self.plain(split)
        n = len(ds) if limit is None else min(limit, len(ds))
        if isinstance(ds.pool, _TensorPool):  # vectorised: one indexing op, one transform
            idx = torch.from_numpy(ds.indices[:n].copy())
            return ds.transform(ds.pool.images[idx]), ds.pool.labels[idx].clone()
        xs, ys = zip(*(ds[i] for i in range(n)), strict=True)
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)

    def describe(self) -> dict[str, Any]:
        """Plain-JSON description for checkpoints and run dirs; ``build_data_like`` reads it."""
        return {
            "name": self.name,
            "seed": self.seed,
            "reward_val_size": self.reward_val_size,
            "sizes": {s: len(self.split(s)) for s in SPLITS},
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "options": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options.items()
            },
        }


# ----------------------------------------------------------------------------- loaders


@dataclass
class _Loaded:
    pool: _TensorPool | _FilePool
    n_train_pool: int  # [0, n_train_pool) is the training part
    has_test: bool  # [n_train_pool, len(pool)) is a separate test set
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_transform: Callable[[Any], torch.Tensor]
    eval_transform: Callable[[Any], torch.Tensor]
    augment: bool
    options: dict[str, Any]


def _candidate_dirs(
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


def _load_digits(options: dict[str, Any]) -> _Loaded:
    from sklearn.datasets import load_digits

    _no_options("digits", options)
    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1)  # values 0..16
    labels = torch.from_numpy(digits.target.astype(np.int64))
    t = _TensorTransform((0.3053,), (0.3760,), scale=1 / 16)
    return _Loaded(
        _TensorPool(images, labels), len(labels), False, 10, 1, (8, 8), (0.3053,), (0.3760,),
        t, t, False, {},
    )  # fmt: skip


_FMNIST_FILES = {
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
    dirs = _candidate_dirs(
        data_dir, ("fashion-mnist", "FashionMNIST/raw"), FASHION_MNIST_SYSTEM_DIR
    )
    for d in dirs:
        found = {key: _find_idx(d, stem) for key, stem in _FMNIST_FILES.items()}
        present = {k: p for k, p in found.items() if p is not None}
        if len(present) == len(_FMNIST_FILES):
            return present
        if present:
            missing = [_FMNIST_FILES[k] + "[.gz]" for k, p in found.items() if p is None]
            raise FileNotFoundError(
                f"Fashion-MNIST in {d} is incomplete: missing {', '.join(missing)}"
            )
    raise FileNotFoundError(
        f"Fashion-MNIST not found; looked in {', '.join(map(str, dirs))} for "
        f"{', '.join(s + '[.gz]' for s in _FMNIST_FILES.values())}. Get it with "
        f"`apt-get install dataset-fashion-mnist` (installs {FASHION_MNIST_SYSTEM_DIR}) or "
        "download the four files from https://github.com/zalandoresearch/fashion-mnist and pass "
        "--data-dir DIR (or set PRUNEGYM_DATA=DIR)"
    )


def _load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None, options: dict[str, Any]
) -> _Loaded:
    from prunegym.experiments.idx import IDXError, read_idx

    augment = bool(options.pop("augment", True))
    _no_options("fashion-mnist", options)
    paths = find_fashion_mnist(data_dir)
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
    images = torch.from_numpy(np.concatenate([parts["train_images"], parts["test_images"]]))
    labels = torch.from_numpy(
        np.concatenate([parts["train_labels"], parts["test_labels"]]).astype(np.int64)
    )
    mean, std = (0.2860,), (0.3530,)
    train_t = _TensorTransform(mean, std, 1 / 255, crop_padding=2 if augment else 0, flip=augment)
    eval_t = _TensorTransform(mean, std, 1 / 255)
    return _Loaded(
        _TensorPool(images.unsqueeze(1), labels), len(parts["train_labels"]), True, 10, 1,
        tuple(images.shape[1:]), mean, std, train_t, eval_t, augment,
        {"data_dir": str(paths["train_images"].parent), "augment": augment},
    )  # fmt: skip


def _load_cifar10(
    data_dir: str | os.PathLike[str] | None, download: bool, options: dict[str, Any]
) -> _Loaded:
    import torchvision

    augment = bool(options.pop("augment", True))
    _no_options("cifar10", options)
    dirs = _candidate_dirs(data_dir, ("cifar10", "cifar-10"), None)
    root = next((d for d in dirs if (d / "cifar-10-batches-py" / "data_batch_1").is_file()), None)
    if root is None:
        if not download:
            looked = ", ".join(map(str, dirs)) or "nowhere (no --data-dir, PRUNEGYM_DATA unset)"
            raise FileNotFoundError(
                f"CIFAR-10 not found; looked for cifar-10-batches-py/ in {looked}. Pass "
                "--data-dir DIR --download to fetch it into DIR (about 170 MB)"
            )
        if not dirs:
            raise ValueError("downloading CIFAR-10 needs a target: pass --data-dir DIR")
        root = dirs[0]
        root.mkdir(parents=True, exist_ok=True)
    try:
        sets = [
            torchvision.datasets.CIFAR10(str(root), train=t, download=download)
            for t in (True, False)
        ]
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise ValueError(f"CIFAR-10 in {root}: {exc}") from None
    images = torch.from_numpy(np.concatenate([s.data for s in sets])).permute(0, 3, 1, 2)
    labels = torch.tensor([t for s in sets for t in s.targets], dtype=torch.int64)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    train_t = _TensorTransform(mean, std, 1 / 255, crop_padding=4 if augment else 0, flip=augment)
    eval_t = _TensorTransform(mean, std, 1 / 255)
    return _Loaded(
        _TensorPool(images.contiguous(), labels), len(sets[0]), True, 10, 3, (32, 32), mean, std,
        train_t, eval_t, augment, {"data_dir": str(root), "augment": augment},
    )  # fmt: skip


def _load_imagefolder(data_dir: str | os.PathLike[str] | None, options: dict[str, Any]) -> _Loaded:
    import torchvision
    from torchvision import transforms as T

    size = int(options.pop("image_size", 224))
    augment = bool(options.pop("augment", True))
    _no_options("imagefolder", options)
    dirs = _candidate_dirs(data_dir, ("imagefolder",), None)
    root = next((d for d in dirs if d.is_dir()), None)
    if root is None:
        looked = ", ".join(map(str, dirs)) or "nowhere (no --data-dir, PRUNEGYM_DATA unset)"
        raise FileNotFoundError(
            f"imagefolder needs a directory of class folders (root/<class>/*.png, or root/train "
            f"and root/val); looked in {looked}"
        )
    test_dir = next((root / s for s in ("val", "test") if (root / s).is_dir()), None)
    try:
        if (root / "train").is_dir() and test_dir is not None:
            tr = torchvision.datasets.ImageFolder(str(root / "train"))
            te = torchvision.datasets.ImageFolder(str(test_dir))
            if te.classes != tr.classes:
                raise ValueError(f"{test_dir}: classes differ from {root / 'train'}")
            samples, n_train, has_test, classes = tr.samples + te.samples, len(tr), True, tr.classes
        else:
            ds = torchvision.datasets.ImageFolder(str(root))
            samples, n_train, has_test, classes = ds.samples, len(ds), False, ds.classes
    except FileNotFoundError as exc:  # torchvision: "Couldn't find any class folder"
        raise FileNotFoundError(f"imagefolder {root}: {exc}") from None
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    norm = [T.ToTensor(), T.Normalize(mean, std)]
    eval_t = T.Compose([T.Resize(max(size, round(size * 256 / 224))), T.CenterCrop(size), *norm])
    train_t = (
        T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *norm])
        if augment
        else eval_t
    )
    return _Loaded(
        _FilePool(samples), n_train, has_test, len(classes), 3, (size, size), mean, std,
        train_t, eval_t, augment,
        {"data_dir": str(root), "image_size": size, "augment": augment},
    )  # fmt: skip


def _load_synthetic(options: dict[str, Any]) -> _Loaded:
    shape = tuple(int(s) for s in options.pop("shape", (3, 32, 32)))
    num_classes = int(options.pop("num_classes", 10))
    size = int(options.pop("size", 512))
    _no_options("synthetic", options)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"synthetic shape must be (C, H, W) with positive sizes, got {shape}")
    if num_classes < 2 or size < 10:
        raise ValueError(
            f"synthetic needs num_classes >= 2 and size >= 10, got {num_classes}, {size}"
        )
    gen = torch.Generator().manual_seed(_SYNTHETIC_SEED)
    prototypes = torch.randn((num_classes, *shape), generator=gen)
    labels = torch.randint(0, num_classes, (size,), generator=gen)
    images = prototypes[labels] + torch.randn((size, *shape), generator=gen)
    t = _TensorTransform((0.0,) * shape[0], (1.0,) * shape[0], scale=1.0)
    return _Loaded(
        _TensorPool(images, labels), size, False, num_classes, shape[0], (shape[1], shape[2]),
        (0.0,) * shape[0], (1.0,) * shape[0], t, t, False,
        {"shape": list(shape), "num_classes": num_classes, "size": size},
    )  # fmt: skip


def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise ValueError(f"dataset {name!r} does not take option(s) {', '.join(sorted(options))}")


DATASETS: dict[str, str] = {
    "digits": "scikit-learn's 8x8 handwritten digits (shipped with scikit-learn; no setup)",
    "fashion-mnist": "Fashion-MNIST from the four IDX files (--data-dir, $PRUNEGYM_DATA, "
    f"{FASHION_MNIST_SYSTEM_DIR})",
    "cifar10": "CIFAR-10 through torchvision (--data-dir; downloaded only with download=True)",
    "imagefolder": "torchvision ImageFolder: root/<class>/... or root/train + root/val",
    "synthetic": "random class-prototype tensors for tests (options: shape, num_classes, size)",
}


def dataset_names() -> list[str]:
    """Every name ``build_data`` accepts."""
    return list(DATASETS)


# ----------------------------------------------------------------------------- build_data


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
    (imagefolder), ``shape``/``num_classes``/``size`` (synthetic).
    """
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if download and key != "cifar10":
        raise ValueError(f"dataset {name!r} cannot be downloaded (only cifar10 can)")
    options = dict(options)
    if key == "digits":
        loaded = _load_digits(options)
    elif key == "fashion-mnist":
        loaded = _load_fashion_mnist(data_dir, options)
    elif key == "cifar10":
        loaded = _load_cifar10(data_dir, download, options)
    elif key == "imagefolder":
        loaded = _load_imagefolder(data_dir, options)
    else:
        loaded = _load_synthetic(options)
    return _split(key, loaded, reward_val_size, seed)


def _split(name: str, loaded: _Loaded, reward_val_size: int | None, seed: int) -> DataSplits:
    n_pool = len(loaded.pool)
    if loaded.has_test:
        train_pool = np.arange(loaded.n_train_pool)
        test_idx = np.arange(loaded.n_train_pool, n_pool)
    else:
        order = np.random.default_rng(_TEST_SEED).permutation(n_pool)
        n_test = math.ceil(_TEST_FRACTION * n_pool)
        test_idx, train_pool = np.sort(order[:n_test]), np.sort(order[n_test:])
    if reward_val_size is None:
        reward_val_size = default_reward_val_size(len(train_pool))
    if isinstance(reward_val_size, bool) or not isinstance(reward_val_size, (int, np.integer)):
        raise ValueError(f"reward_val_size must be an integer, got {reward_val_size!r}")
    if not 1 <= reward_val_size < len(train_pool):
        raise ValueError(
            f"reward_val_size must be in [1, {len(train_pool) - 1}] for {name} "
            f"(training part has {len(train_pool)} samples), got {reward_val_size}"
        )
    if len(test_idx) == 0:
        raise ValueError(f"dataset {name} has no test samples")
    perm = np.random.default_rng(seed).permutation(train_pool)
    reward_idx = np.sort(perm[:reward_val_size])
    train_idx = np.sort(perm[reward_val_size:])
    for arr in (train_idx, reward_idx, test_idx):
        arr.flags.writeable = False

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
        reward_val_size=int(reward_val_size),
        options=MappingProxyType(dict(loaded.options)),
        _plain_train=make(train_idx, "train", False) if loaded.augment else train,
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
    recorded_dir = options.pop("data_dir", None)
    if data_dir is None and recorded_dir is not None and Path(recorded_dir).is_dir():
        data_dir = recorded_dir
    data = build_data(name, reward_val_size=size, seed=seed, data_dir=data_dir, **options)
    sizes = description.get("sizes")
    actual = {s: len(data.split(s)) for s in SPLITS}
    if sizes is not None and dict(sizes) != actual:
        raise ValueError(f"{name} splits now have sizes {actual}, recorded {dict(sizes)}")
    return data
