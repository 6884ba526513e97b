"""Sample transforms: raw pool tensors -> the float tensors a model reads."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["TensorTransform"]


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
