"""Shared checks of the architecture and coverage tests: a policy applies for real,
the masked network equals the physically pruned one, and the table's MACs are exact."""

from __future__ import annotations

import torch
from conftest import randomize_batchnorm
from torch import nn

from prunegym.experiments.models import build_model
from prunegym.pruners import ChannelPruner, LayerTable, PruningPolicy, count_cost


def tv(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(build_model(f"tv:{name}", num_classes=10), seed).eval()


def prunes_exactly(
    model: nn.Module, table: LayerTable, policy: PruningPolicy | float, side: int
) -> nn.Module:
    """Apply ``policy`` (or a uniform sparsity) for real on ``side`` px inputs; assert the
    mask changes the output, masked == physical, same output shape, exact MACs."""
    if not isinstance(policy, PruningPolicy):
        policy = PruningPolicy.uniform(table, policy)
    example = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    batch = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(2))
    pruner = ChannelPruner(model, table, round_to=policy.round_to)
    small = pruner.apply(policy).eval()
    with torch.no_grad():
        out_small = small(batch)
        with pruner.masked(policy):
            out_masked = model(batch)
        dense = model(batch)
    assert out_small.shape == dense.shape == (2, 10)
    assert (dense - out_masked).abs().max().item() > 1e-6  # the mask did something
    assert (out_masked - out_small).abs().max().item() < 1e-4 * max(1.0, dense.abs().max().item())
    assert table.cost(policy) == count_cost(small, example)
    assert table.cost(policy).macs < table.total_macs
    return small
