"""Sample transforms: raw pool tensors -> the float tensors a model reads.

:class:`TensorTransform` scales, augments and normalises one dataset's tensors; the image
options (:data:`IMAGE_OPTIONS`) adapt any dataset to a model made for another layout
(Fashion-MNIST padded to 3x32x32 for a CIFAR network) with :class:`AdaptedTransform`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "IMAGE_OPTIONS",
    "RESIZE_MODES",
    "AdaptedTransform",
    "ImageFormat",
    "ImageOptions",
    "TensorTransform",
    "adapted_format",
    "fit_channels",
    "fit_size",
]


class TensorTransform:
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


# ----------------------------------------------------------------------------- adapting

#: Options every dataset takes (unless it declares one of them itself, as imagefolder
#: does ``image_size``): they fit the images to a model made for another layout.
IMAGE_OPTIONS = ("image_size", "resize", "channels", "mean", "std")
RESIZE_MODES = ("pad", "bilinear")
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601: RGB -> grey


@dataclass(frozen=True)
class ImageOptions:
    """``image_size`` (side or ``[H, W]``) reached by ``resize`` (``pad``: centred black
    border, the default; ``bilinear``), ``channels`` (1 -> 3 repeats the grey channel,
    3 -> 1 takes the luma) and the normalisation ``mean`` / ``std`` (default: the
    dataset's, repeated to the new channel count)."""

    image_size: tuple[int, int] | None = None
    resize: str | None = None
    channels: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def take(cls, options: dict[str, Any], keep: Collection[str] = ()) -> ImageOptions:
        """Remove the image options from ``options`` (except those in ``keep``), checked."""
        raw = {k: options.pop(k) for k in IMAGE_OPTIONS if k in options and k not in keep}
        size = raw.get("image_size")
        if size is not None:
            size = _pair(size)
        resize = raw.get("resize")
        if resize is not None and resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        if resize is not None and size is None:
            raise ValueError("resize needs image_size (the size to resize to)")
        channels = raw.get("channels")
        if channels is not None and channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        mean, std = (_floats(raw.get(k), k) for k in ("mean", "std"))
        if std is not None and min(std) <= 0:
            raise ValueError(f"std must be positive, got {list(std)}")
        return cls(size, resize, channels, mean, std)

    def record(self) -> dict[str, Any]:
        """The options that were set, as plain data (``build_data`` takes them back)."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
            if v is not None
        }

    def is_identity(self) -> bool:
        return not self.record()


def _pair(size: Any) -> tuple[int, int]:
    values = [size] if isinstance(size, int) else list(size) if isinstance(size, Sequence) else []
    if len(values) == 1:
        values = values * 2
    if (
        len(values) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) for v in values)
        or min(values) < 1
    ):
        raise ValueError(f"image_size must be a positive side or [height, width], got {size!r}")
    return values[0], values[1]


def _floats(value: Any, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, (int, float)) else value
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a list of numbers, got {value!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite numbers, got {value!r}")
    return out


@dataclass(frozen=True)
class ImageFormat:
    """What a transform produces: channels, ``(H, W)`` and its normalisation."""

    channels: int
    size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def adapted_format(native: ImageFormat, options: ImageOptions, dataset: str) -> ImageFormat:
    """The format ``options`` turn ``native`` into; impossible requests are ValueErrors."""
    channels = options.channels or native.channels
    if channels != native.channels and {channels, native.channels} != {1, 3}:
        raise ValueError(
            f"{dataset}: cannot turn {native.channels}-channel images into {channels} channels"
        )
    size = native.size
    if options.image_size is not None:
        if len(native.size) != 2:
            raise ValueError(f"{dataset}: image_size needs images (C, H, W), got {native.size}")
        size = options.image_size
        if (options.resize or "pad") == "pad" and (
            size[0] < native.size[0] or size[1] < native.size[1]
        ):
            raise ValueError(
                f"{dataset}: image_size {list(size)} is smaller than the {native.size[0]}x"
                f"{native.size[1]} images and padding only grows them; pass resize: bilinear"
            )

    def norm(given: tuple[float, ...] | None, own: tuple[float, ...], name: str) -> tuple:
        if given is None:
            given = own if channels == native.channels else (sum(own) / len(own),)
        if len(given) == 1:
            return given * channels
        if len(given) != channels:
            raise ValueError(f"{dataset}: {name} needs 1 or {channels} values, got {len(given)}")
        return given

    return ImageFormat(channels, size, norm(options.mean, native.mean, "mean"),
                       norm(options.std, native.std, "std"))  # fmt: skip


class AdaptedTransform:
    """``inner``'s normalised output, un-normalised, fitted to ``out`` and normalised again.

    Works on one sample ``(C, H, W)`` or a batch ``(N, C, H, W)``.
    """

    def __init__(
        self, inner: Callable[[Any], torch.Tensor], native: ImageFormat, out: ImageFormat,
        resize: str | None,
    ) -> None:  # fmt: skip
        self.inner = inner
        self.native, self.out = native, out
        self.resize = resize or "pad"

    def __call__(self, raw: Any) -> torch.Tensor:
        x = self.inner(raw)
        x = x * _column(self.native.std) + _column(self.native.mean)
        x = fit_size(x, self.out.size, self.resize)
        x = fit_channels(x, self.out.channels)
        return (x - _column(self.out.mean)) / _column(self.out.std)


def _column(values: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1)


def fit_size(x: torch.Tensor, size: tuple[int, ...], mode: str) -> torch.Tensor:
    """Pad (centred, zeros) or resize (bilinear, antialiased) the last two dims to ``size``."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    if mode == "pad":
        top, left = (size[0] - h) // 2, (size[1] - w) // 2
        return F.pad(x, (left, size[1] - w - left, top, size[0] - h - top))
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    out = F.interpolate(batch, size=tuple(size), mode="bilinear", align_corners=False,
                        antialias=True)  # fmt: skip
    return out if x.dim() == 4 else out.squeeze(0)


def fit_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """1 -> ``channels`` by repetition; 3 -> 1 by the BT.601 luma."""
    have = x.shape[-3]
    if have == channels:
        return x
    if have == 1:
        return x.repeat_interleave(channels, dim=-3)
    weights = torch.tensor(_LUMA, dtype=x.dtype).view(3, 1, 1)
    return (x * weights).sum(dim=-3, keepdim=True)
