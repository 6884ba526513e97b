"""The model zoo: CIFAR-style networks sized for small images, and torchvision by name.

Every builder takes ``in_channels`` and ``num_classes`` so the same network serves
1-channel data (digits, Fashion-MNIST) and 3-channel data (CIFAR-10). Weights are
randomly initialised; nothing is ever downloaded. ``build_model`` also builds
torchvision models (``tv:<name>``) and the user's own (``package.module:function``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from prunegym.experiments.config import ConfigError
from prunegym.experiments.user_code import call_function, is_import_path, load_function

__all__ = ["MODELS", "build_model", "check_model_name", "model_names"]


def _conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> list:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]


class BasicBlock(nn.Module):
    """ResNet basic block with a 1x1 projection shortcut when the shape changes.

    The projection ("option B") keeps the residual stage a clean Torch-Pruning group;
    the zero-padding shortcut ("option A") is mis-grouped by torch-pruning 1.6.
    ``residual=False`` gives the plain (shortcut-free) network of the same depth.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, residual: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.residual = residual
        self.shortcut: nn.Module = nn.Identity()
        if residual and (stride != 1 or c_in != c_out):
            self.shortcut = nn.Sequential(*_conv_bn(c_in, c_out, kernel=1, stride=stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return torch.relu(out)


class CifarResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016, section 4.2): depth 6n+2, widths 16/32/64."""

    def __init__(
        self, depth: int, in_channels: int = 3, num_classes: int = 10, residual: bool = True
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(*_conv_bn(in_channels, 16), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c_in = 16
        for stage, width in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, width, stride, residual))
                c_in = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


_VGG_CFG: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class CifarVGG(nn.Module):
    """VGG with batch norm for small images: conv stack, global pooling, one linear layer.

    ``width`` scales every conv's channels (at least 8), keeping the depth: ``width=0.25``
    is VGG-16's 13 conv layers at 16-128 channels, 1/16 of the parameters.
    """

    def __init__(
        self, depth: int, in_channels: int = 3, num_classes: int = 10, width: float = 1.0
    ) -> None:
        super().__init__()
        if not width > 0:
            raise ValueError(f"width must be positive, got {width!r}")
        layers: list[nn.Module] = []
        c_in = in_channels
        for v in _VGG_CFG[depth]:
            if isinstance(v, str):  # "M"
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                c_out = max(8, int(v * width))
                layers += [*_conv_bn(c_in, c_out), nn.ReLU(inplace=True)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*_conv_bn(c_in, hidden, kernel=1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(hidden, hidden, stride=stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += _conv_bn(hidden, c_out, kernel=1)
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class CifarMobileNetV2(nn.Module):
    """MobileNetV2 for 32x32 inputs: stride 1 in the stem and the first two stages."""

    # expansion, output channels, repeats, first stride
    _CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        c_in = max(8, int(32 * width))
        layers: list[nn.Module] = [*_conv_bn(in_channels, c_in), nn.ReLU6(inplace=True)]
        for t, c, n, s in self._CFG:
            c_out = max(8, int(c * width))
            for i in range(n):
                layers.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
                c_in = c_out
        last = max(1280, int(1280 * width)) if width > 1.0 else 1280
        layers += [*_conv_bn(c_in, last, kernel=1), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class SmallCNN(nn.Module):
    """A four-conv network sized for 8x8 digits: the demo's model (about 0.13 M params)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn(in_channels, 32), nn.ReLU(inplace=True),
            *_conv_bn(32, 64), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            *_conv_bn(64, 64), nn.ReLU(inplace=True),
            *_conv_bn(64, 128), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(128, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet20": partial(CifarResNet, 20),
    "resnet32": partial(CifarResNet, 32),
    "resnet56": partial(CifarResNet, 56),
    "plain20": partial(CifarResNet, 20, residual=False),
    "vgg11": partial(CifarVGG, 11),
    "vgg16": partial(CifarVGG, 16),
    "mobilenetv2": CifarMobileNetV2,
    "smallcnn": SmallCNN,
}


def model_names() -> list[str]:
    """Every name ``build_model`` accepts (``tv:<name>`` stands for any torchvision model)."""
    return [*MODELS, "tv:<torchvision classification model>", "package.module:function"]


def check_model_name(name: str) -> None:
    """Raise ``ValueError`` (listing the known names) unless ``build_model`` knows ``name``.

    An import path is imported here, so a missing module or function is found early.
    """
    if is_import_path(name):
        load_function(name, "model")
    elif name.startswith("tv:"):
        import torchvision

        available = sorted(torchvision.models.list_models(module=torchvision.models))
        if name[3:] not in available:
            raise ValueError(
                f"unknown torchvision model {name[3:]!r}; known: {', '.join(available)}"
            )
    elif name.lower() not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(model_names())}")


def build_model(
    name: str, in_channels: int | None = None, num_classes: int | None = None, **model_kwargs: Any
) -> nn.Module:
    """Build a model by name: a zoo model (random init), ``tv:<name>`` or your own function.

    Zoo and torchvision models take ``in_channels`` (default 3) and ``num_classes``
    (default 10) plus any keyword of their builder (``width`` for ``mobilenetv2``,
    ``vgg11`` and ``vgg16``).
    ``package.module:function`` imports your module and returns ``function(**model_kwargs)``
    (``in_channels`` / ``num_classes`` are passed on only when given): naming a function
    is asking prunegym to run it, as a config naming one does. Unknown names, arguments
    the builder does not take and a function that returns no ``nn.Module`` are one-line
    ``ValueError`` s (``ConfigError`` for import paths).
    """
    if is_import_path(name):
        given = {"in_channels": in_channels, "num_classes": num_classes}
        kwargs = {**{k: v for k, v in given.items() if v is not None}, **model_kwargs}
        model = call_function(load_function(name, "model"), name, "model", kwargs)
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"model {name} returned {type(model).__name__!r}, not a torch.nn.Module"
            )
        return model
    in_channels = 3 if in_channels is None else in_channels
    num_classes = 10 if num_classes is None else num_classes
    for label, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    check_model_name(name)
    if name.startswith("tv:"):
        return _build_torchvision(name[3:], in_channels, num_classes, model_kwargs)
    kwargs = {"in_channels": in_channels, "num_classes": num_classes, **model_kwargs}
    return call_function(MODELS[name.lower()], name, "model", kwargs)


# Torchvision builders whose defaults do not fit "logits out of forward()" or warn at build.
_TV_KWARGS: dict[str, dict[str, object]] = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}


def _build_torchvision(
    name: str, in_channels: int, num_classes: int, model_kwargs: dict[str, Any]
) -> nn.Module:
    import torchvision

    kwargs = {**_TV_KWARGS.get(name, {}), **model_kwargs}
    try:
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except TypeError as exc:  # an argument the builder does not take
        raise ValueError(f"model tv:{name}: {exc}") from None
    if in_channels != 3:
        _replace_first_conv(model, in_channels)
    return model


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Swap the first registered convolution (every torchvision classifier's stem)."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model has no convolution to adapt to the input channels")
    name, conv = convs[0]
    if conv.in_channels != 3 or conv.groups != 1:
        raise ValueError(f"first convolution {name!r} does not take a plain 3-channel input")
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]  # Conv2d stores 2-tuples
        conv.dilation, 1, conv.bias is not None, conv.padding_mode,  # type: ignore[arg-type]  # as above
        device=conv.weight.device, dtype=conv.weight.dtype,
    )  # fmt: skip
    parent_name, _, child_name = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child_name, new)
