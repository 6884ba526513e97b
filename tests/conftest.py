"""Shared fixtures: tiny models with non-trivial batch-norm statistics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from prunegym.experiments.models import build_model


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """One intra-op thread for the whole suite: on a shared 2-core machine two OpenMP
    threads per process can be many times slower, and results stay deterministic."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Architectures the pruning engine must handle (zoo names and torchvision names).
ARCHS = ["resnet20", "vgg11", "mobilenetv2", "tv:resnet18", "tv:mobilenet_v2"]


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial statistics and affine params, so masks are tested for real."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(n, generator=gen) * 0.2 + 1.0)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def make_model(name: str, in_channels: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(build_model(name, in_channels=in_channels), seed).eval()


@pytest.fixture
def example_input() -> torch.Tensor:
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
