"""The model zoo: every network builds for 1- and 3-channel inputs with the right output."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunegym.experiments.models import MODELS, build_model, model_names

# (channels, side): Fashion-MNIST/digits-like 1-channel and CIFAR-like 3-channel inputs.
SHAPES = [(1, 28), (3, 32), (1, 8)]


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize(("channels", "side"), SHAPES)
def test_zoo_model_output_shape(name: str, channels: int, side: int) -> None:
    model = build_model(name, in_channels=channels, num_classes=7).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, channels, side, side))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == channels


def test_resnet_depths_and_projection_shortcuts() -> None:
    def n_convs(model: nn.Module) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in model.modules())

    # 6n+2 layers: stem + 6n convs + fc; two 1x1 projections (stage 2 and 3 entry).
    assert n_convs(build_model("resnet20")) == 19 + 2
    assert n_convs(build_model("resnet32")) == 31 + 2
    assert n_convs(build_model("resnet56")) == 55 + 2
    assert n_convs(build_model("plain20")) == 19
    widths = {m.out_channels for m in build_model("resnet20").modules() if isinstance(m, nn.Conv2d)}
    assert widths == {16, 32, 64}
    projections = [
        m
        for m in build_model("resnet20").modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
    ]
    assert [(p.in_channels, p.out_channels, p.stride) for p in projections] == [
        (16, 32, (2, 2)),
        (32, 64, (2, 2)),
    ]


def test_resnet_forward_uses_the_shortcut() -> None:
    torch.manual_seed(0)
    model = build_model("resnet20", in_channels=1).eval()
    x = torch.randn(1, 1, 28, 28)
    with torch.inference_mode():
        before = model(x)
        # Zeroing the last block's residual branch leaves the shortcut path alive.
        last = model.layer3[-1]
        last.bn2.weight.zero_()
        last.bn2.bias.zero_()
        after = model(x)
    assert torch.isfinite(after).all() and not torch.equal(before, after)
    assert after.abs().sum() > 0


def test_vgg_has_batch_norm_and_mobilenet_has_depthwise() -> None:
    vgg = build_model("vgg16")
    n_conv = sum(isinstance(m, nn.Conv2d) for m in vgg.modules())
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in vgg.modules())
    assert n_conv == n_bn == 13
    assert sum(isinstance(m, nn.Conv2d) for m in build_model("vgg11").modules()) == 8
    mbv2 = build_model("mobilenetv2")
    depthwise = [
        m for m in mbv2.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1
    ]
    assert len(depthwise) == 17


@pytest.mark.parametrize(("name", "side"), [("tv:resnet18", 32), ("tv:mobilenet_v3_small", 32)])
@pytest.mark.parametrize("channels", [1, 3])
def test_torchvision_models_by_name(name: str, channels: int, side: int) -> None:
    model = build_model(name, in_channels=channels, num_classes=5).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, channels, side, side)).shape == (2, 5)


def test_torchvision_inception_family_returns_plain_logits_in_train_mode() -> None:
    model = build_model("tv:googlenet", in_channels=1, num_classes=4).train()
    out = model(torch.randn(2, 1, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet21'") as err:
        build_model("resnet21")
    for known in MODELS:
        assert known in str(err.value)
    assert "tv:<" in str(err.value)
    with pytest.raises(ValueError, match=r"unknown torchvision model 'nope'.*resnet18"):
        build_model("tv:nope")
    assert set(MODELS) <= set(model_names())


@pytest.mark.parametrize(
    ("kwargs"), [{"in_channels": 0}, {"num_classes": -1}, {"num_classes": 2.5}]
)
def test_bad_shapes_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        build_model("smallcnn", **kwargs)


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a = build_model("resnet20", in_channels=1).state_dict()
    torch.manual_seed(3)
    b = build_model("resnet20", in_channels=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_vgg_width_scales_every_conv_and_keeps_the_depth() -> None:
    full = [m.out_channels for m in build_model("vgg16").modules() if isinstance(m, nn.Conv2d)]
    narrow_model = build_model("vgg16", in_channels=1, width=0.25)
    narrow = [m.out_channels for m in narrow_model.modules() if isinstance(m, nn.Conv2d)]
    assert narrow == [max(8, c // 4) for c in full] and len(narrow) == 13
    assert narrow_model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="width must be positive"):
        build_model("vgg11", width=0)
