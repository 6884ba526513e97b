"""A small plain VGG with batch norm for 3x32x32 inputs: a model a user brings.

Conv-BN-ReLU stacks separated by 2x2 max-pools (the layout of VGG-11, narrower), then
a global average pool and one linear layer. Nothing in prunegym defines it: configs name
it as ``benchmarks.models.small_vgg:small_vgg`` (see ``configs/small-vgg-fmnist.yaml``),
the way a user names their own ``package.module:function``.

At ``width=1`` it costs about 15 MMACs per 3x32x32 image (``prunegym.count_cost``).
"""

from __future__ import annotations

import torch
from torch import nn

#: Output channels of each conv stage ("M": a 2x2 max-pool), at ``width=1``.
LAYOUT: tuple[int | str, ...] = (24, "M", 48, "M", 96, 96, "M", 128, 128, "M", 128, 128, "M")


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded to a multiple of 8 (at least 8)."""
    return max(8, round(channels * width / 8) * 8)


class SmallVGG(nn.Module):
    """``features`` (conv-bn-relu and max-pool), global average pool, ``classifier``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        layers: list[nn.Module] = []
        c_in = in_channels
        for item in LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c_out = scaled(int(item), width)
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]  # fmt: skip
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def small_vgg(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> SmallVGG:
    """A :class:`SmallVGG` (random initialisation)."""
    return SmallVGG(num_classes, in_channels, width)
