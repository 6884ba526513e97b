"""The built-in datasets other than Fashion-MNIST: digits, CIFAR-10, ImageFolder, synthetic."""

from __future__ import annotations

import numpy as np
import torch

from prunegym.experiments.data.pools import FilePool, TensorPool
from prunegym.experiments.data.registry import (
    LoadedData,
    LoadRequest,
    candidate_dirs,
    register_dataset,
)
from prunegym.experiments.data.transforms import TensorTransform

__all__ = ["load_cifar10", "load_digits", "load_imagefolder", "load_synthetic"]

_SYNTHETIC_SEED = 0x5EED  # constant: the synthetic tensors do not move with the split seed


@register_dataset(
    "digits", "scikit-learn's 8x8 handwritten digits (shipped with scikit-learn; no setup)"
)
def load_digits(request: LoadRequest) -> LoadedData:
    """1797 8x8 grey images with values 0..16, no separate test set."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    mean, std = (0.3053,), (0.3760,)
    t = TensorTransform(mean, std, scale=1 / 16)
    return LoadedData(
        TensorPool(images, labels), len(labels), False, 10, 1, (8, 8), mean, std, t, t, False, {}
    )


@register_dataset(
    "cifar10",
    "CIFAR-10 through torchvision (--data-dir; downloaded only with download=True)",
    options=("augment",),
    downloadable=True,
)
def load_cifar10(request: LoadRequest) -> LoadedData:
    """The 50000 training images first, then the 10000 test images; crop and flip."""
    import torchvision

    augment = bool(request.options.get("augment", True))
    dirs = candidate_dirs(request.data_dir, ("cifar10", "cifar-10"), None)
    root = next((d for d in dirs if (d / "cifar-10-batches-py" / "data_batch_1").is_file()), None)
    if root is None:
        if not request.download:
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
            torchvision.datasets.CIFAR10(str(root), train=t, download=request.download)
            for t in (True, False)
        ]
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise ValueError(f"CIFAR-10 in {root}: {exc}") from None
    images = torch.from_numpy(np.concatenate([s.data for s in sets])).permute(0, 3, 1, 2)
    labels = torch.tensor([t for s in sets for t in s.targets], dtype=torch.int64)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    train_t = TensorTransform(mean, std, 1 / 255, crop_padding=4 if augment else 0, flip=augment)
    return LoadedData(
        TensorPool(images.contiguous(), labels), len(sets[0]), True, 10, 3, (32, 32), mean, std,
        train_t, TensorTransform(mean, std, 1 / 255), augment,
        {"data_dir": str(root), "augment": augment},
    )  # fmt: skip


@register_dataset(
    "imagefolder",
    "torchvision ImageFolder: root/<class>/... or root/train + root/val",
    options=("augment", "image_size"),
)
def load_imagefolder(request: LoadRequest) -> LoadedData:
    """Class folders read with PIL; resize + centre crop (eval), random resized crop (train)."""
    import torchvision
    from torchvision import transforms as T

    size = int(request.options.get("image_size", 224))
    augment = bool(request.options.get("augment", True))
    dirs = candidate_dirs(request.data_dir, ("imagefolder",), None)
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
    return LoadedData(
        FilePool(samples), n_train, has_test, len(classes), 3, (size, size), mean, std,
        train_t, eval_t, augment,
        {"data_dir": str(root), "image_size": size, "augment": augment},
    )  # fmt: skip


@register_dataset(
    "synthetic",
    "random class-prototype tensors for tests (options: shape, num_classes, size)",
    options=("shape", "num_classes", "size"),
)
def load_synthetic(request: LoadRequest) -> LoadedData:
    """``size`` samples: a random prototype per class plus unit Gaussian noise (fixed seed)."""
    options = request.options
    shape = tuple(int(s) for s in options.get("shape", (3, 32, 32)))
    num_classes = int(options.get("num_classes", 10))
    size = int(options.get("size", 512))
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
    zero, one = (0.0,) * shape[0], (1.0,) * shape[0]
    t = TensorTransform(zero, one, scale=1.0)
    return LoadedData(
        TensorPool(images, labels), size, False, num_classes, shape[0], (shape[1], shape[2]),
        zero, one, t, t, False, {"shape": list(shape), "num_classes": num_classes, "size": size},
    )  # fmt: skip
