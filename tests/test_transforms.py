"""Image options: a dataset fitted to a model made for another layout, with no code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_data import _write_fake_fmnist

from prunegym.experiments.data import SPLITS, build_data, build_data_like
from prunegym.experiments.models import build_model


def _unnormalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean).view(-1, 1, 1)
    s = torch.tensor(std).view(-1, 1, 1)
    return x * s + m


def test_fashion_mnist_padded_to_3x32x32_feeds_a_cifar_vgg(tmp_path: Path) -> None:
    root = _write_fake_fmnist(tmp_path / "fm")
    native = build_data("fashion-mnist", data_dir=root, augment=False)
    data = build_data("fashion-mnist", data_dir=root, augment=False, image_size=32, channels=3)
    assert (data.in_channels, data.image_size) == (3, (32, 32))
    assert data.mean == (0.2860,) * 3 and data.std == (0.3530,) * 3
    assert data.example_input.shape == (1, 3, 32, 32)
    for s in SPLITS:  # the same samples in the same splits
        assert data.indices[s].tolist() == native.indices[s].tolist()
    x, y = data.tensors("test")
    x0, y0 = native.tensors("test")
    assert torch.equal(y, y0)
    pixels = _unnormalise(x, data.mean, data.std)
    assert torch.equal(pixels[:, 0], pixels[:, 1]) and torch.equal(pixels[:, 0], pixels[:, 2])
    inner = _unnormalise(x0, native.mean, native.std)[:, 0]
    assert torch.allclose(pixels[:, 0, 2:30, 2:30], inner, atol=1e-5)  # centred
    border = pixels[:, :, :2].abs().max() + pixels[:, :, :, 30:].abs().max()
    assert border < 1e-5  # a black border
    assert data.reward_val[0][0].shape == data.train[0][0].shape == (3, 32, 32)
    torch.manual_seed(0)
    vgg = build_model("vgg11", data.in_channels, data.num_classes).eval()
    batch, _ = next(iter(data.loader("train", batch_size=4)))
    with torch.inference_mode():
        assert vgg(batch).shape == (4, 10)


def test_adapted_splits_are_rebuilt_from_their_description(tmp_path: Path) -> None:
    root = _write_fake_fmnist(tmp_path / "fm")
    data = build_data("fashion-mnist", data_dir=root, image_size=[30, 32], channels=3, seed=2)
    assert data.options["image_size"] == [30, 32] and data.options["channels"] == 3
    again = build_data_like(data.describe())
    assert again.image_size == (30, 32) and again.in_channels == 3
    assert torch.equal(again.tensors("reward_val")[0], data.tensors("reward_val")[0])


def test_bilinear_resize_grey_channel_and_normalisation() -> None:
    native = build_data("synthetic", shape=(3, 8, 8), size=40)
    small = build_data("synthetic", shape=(3, 8, 8), size=40, image_size=4, resize="bilinear")
    assert small.example_input.shape == (1, 3, 4, 4)
    x8 = native.tensors("test")[0]
    x4 = small.tensors("test")[0]
    for i, c in ((0, 0), (5, 2)):  # the same as PIL's (antialiased) bilinear resize
        reference = Image.fromarray(x8[i, c].numpy(), mode="F").resize((4, 4), Image.BILINEAR)
        assert torch.allclose(x4[i, c], torch.from_numpy(np.array(reference)), atol=1e-5)
    grey = build_data("synthetic", shape=(3, 8, 8), size=40, channels=1, mean=0.5, std=0.25)
    assert (grey.in_channels, grey.mean, grey.std) == (1, (0.5,), (0.25,))
    luma = (x8 * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(grey.tensors("test")[0], (luma - 0.5) / 0.25, atol=1e-5)


def test_imagefolder_takes_the_channel_option(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.new("RGB", (9, 9), (40 * i, 10, 200)).save(tmp_path / cls / f"{i}.png")
    data = build_data("imagefolder", data_dir=tmp_path, image_size=8, channels=1)
    assert data.example_input.shape == (1, 1, 8, 8)
    assert data.options["image_size"] == 8  # imagefolder's own resize-and-crop option


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image_size": 6}, r"smaller than the 8x8 images .* resize: bilinear"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"resize": "bilinear"}, "resize needs image_size"),
        ({"resize": "nearest", "image_size": 9}, "resize must be one of pad, bilinear"),
        ({"image_size": 0}, "image_size must be a positive side"),
        ({"image_size": [8, 8, 8]}, "image_size must be a positive side"),
        ({"mean": [0.1, 0.2]}, "mean needs 1 or 3 values, got 2"),
        ({"std": 0}, "std must be positive"),
        ({"mean": "dark"}, "mean must be a number or a list of numbers"),
    ],
)
def test_impossible_image_options_are_one_line_errors(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        build_data("synthetic", shape=(3, 8, 8), size=40, **options)
    assert "\n" not in str(err.value)


def test_one_to_three_channels_only() -> None:
    with pytest.raises(ValueError, match="cannot turn 2-channel images into 1 channels"):
        build_data("synthetic", shape=(2, 8, 8), size=40, channels=1)
