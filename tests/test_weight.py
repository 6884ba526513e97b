"""Unstructured magnitude pruning: exact counts, reversible masks, folding."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model

from prunegym.pruners import LayerTable, PruningError, WeightPruner, count_nonzero_cost


@pytest.mark.parametrize("arch", ["resnet20", "mobilenetv2"])
def test_weight_masks_are_exact_and_reversible(arch: str, example_input, batch) -> None:
    model = make_model(arch)
    table = LayerTable.from_model(model, example_input, granularity="weight")
    pruner = WeightPruner(model, table)
    policy = pruner.policy([0.7] * len(table))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad(), pruner.masked(policy):
        masked_out = model(batch)
        cost = count_nonzero_cost(model, table)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    folded = pruner.apply(policy)
    with torch.no_grad():
        assert torch.equal(folded(batch), masked_out)
    assert cost == count_nonzero_cost(folded, table)
    assert cost == (table.cost(policy).macs, table.cost(policy).params)
    assert table.cost(policy).params < 0.35 * table.total_params


def test_smallest_magnitudes_go_first(example_input) -> None:
    model = make_model("vgg11")
    table = LayerTable.from_model(model, example_input, granularity="weight")
    pruner = WeightPruner(model, table)
    folded = pruner.apply(pruner.policy({"features.0": 0.5}))
    w0, w1 = model.features[0].weight.abs(), folded.features[0].weight
    kept_min = w0[w1 != 0].min()
    removed_max = w0[w1 == 0].max()
    assert removed_max <= kept_min
    assert int((w1 == 0).sum()) == w0.numel() // 2


def test_weight_pruner_refuses_channel_tables(example_input) -> None:
    model = make_model("resnet20")
    with pytest.raises(PruningError, match="granularity='weight'"):
        WeightPruner(model, LayerTable.from_model(model, example_input))
    table = LayerTable.from_model(model, example_input, granularity="weight")
    with pytest.raises(PruningError, match="magnitude"):
        WeightPruner(model, table, importance="taylor")
