"""Architectures beyond plain CNNs: each prunes with masked == physical and exact MACs."""

from __future__ import annotations

import pytest
import torch
from conftest import randomize_batchnorm
from torch import nn

from prunegym.experiments.models import build_model
from prunegym.pruners import ChannelPruner, LayerTable, PruningPolicy, count_cost


def tv(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(build_model(f"tv:{name}", num_classes=10), seed).eval()


def prunes_exactly(model: nn.Module, table: LayerTable, sparsity: float, side: int) -> nn.Module:
    """Apply a uniform policy; assert masked == physical, same output shape, exact MACs."""
    example = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    batch = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(2))
    pruner = ChannelPruner(model, table)
    policy = PruningPolicy.uniform(table, sparsity)
    small = pruner.apply(policy).eval()
    with torch.no_grad():
        out_small = small(batch)
        with pruner.masked(policy):
            out_masked = model(batch)
        dense = model(batch)
    assert out_small.shape == dense.shape == (2, 10)
    assert (out_masked - out_small).abs().max().item() < 1e-4 * max(1.0, dense.abs().max().item())
    assert table.cost(policy) == count_cost(small, example)
    assert table.cost(policy).macs < table.total_macs
    return small


class _ConvClassifier(nn.Module):
    """A classifier that is a conv followed by pooling and flatten (SqueezeNet's shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.classifier = nn.Sequential(nn.Conv2d(16, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def test_layers_reaching_the_output_through_pooling_are_frozen() -> None:
    table = LayerTable.from_model(_ConvClassifier(), torch.randn(1, 3, 16, 16))
    assert table.frozen == {"classifier.0": "produces the model output"}
    assert table.names == ["features.0"]


class _DepthwiseOnInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(3, 3, 3, padding=1, groups=3)
        self.pw = nn.Conv2d(3, 16, 1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pw(self.dw(x)).mean((2, 3)))


def test_a_depthwise_conv_on_the_model_input_is_frozen() -> None:
    table = LayerTable.from_model(_DepthwiseOnInput(), torch.randn(1, 3, 16, 16))
    assert "model input" in table.frozen["dw"]
    assert table.names == ["pw"]


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_squeezenet_prunes_with_its_classifier_conv_frozen(name: str) -> None:
    model = tv(name)
    table = LayerTable.from_model(model, torch.randn(1, 3, 64, 64))
    assert table.frozen == {"classifier.1": "produces the model output"}
    assert len(table) == 25  # every fire module's squeeze and expand convs
    prunes_exactly(model, table, 0.3, 64)
