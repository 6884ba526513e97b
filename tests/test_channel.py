"""Channel pruning: masked == physical, exact unmasking, caller untouched, counted cost."""

from __future__ import annotations

import pytest
import torch
from conftest import ARCHS, make_model

from prunegym.pruners import LayerTable, PruningError, PruningPolicy, count_cost
from prunegym.pruners.channel import ChannelPruner
from prunegym.pruners.importance import IMPORTANCES


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arch", ARCHS)
def test_half_policy_masked_equals_physical(arch: str, example_input, batch) -> None:
    model = make_model(arch)
    table = LayerTable.from_model(model, example_input)
    pruner = ChannelPruner(model, table, importance="l1")
    policy = PruningPolicy.uniform(table, 0.5)
    before = _snapshot(model)

    small = pruner.apply(policy).eval()
    assert _identical(before, _snapshot(model)), "apply() mutated the caller's model"
    with torch.no_grad():
        out_small = small(batch)
        with pruner.masked(policy):
            out_masked = model(batch)
        out_dense = model(batch)
    assert out_small.shape == (4, 10)
    assert (out_masked - out_small).abs().max().item() < 1e-4
    assert (out_dense - out_masked).abs().max().item() > 1e-3  # the mask did something
    assert _identical(before, _snapshot(model)), "unmask did not restore bit-identical params"
    assert table.cost(policy) == count_cost(small, example_input)
    assert table.cost(policy).macs < 0.5 * table.total_macs


@pytest.mark.parametrize("importance", sorted(IMPORTANCES))
def test_every_importance_prunes_the_lowest_scored_channels(importance: str, example_input) -> None:
    model = make_model("resnet20")
    table = LayerTable.from_model(model, example_input)
    calib = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    pruner = ChannelPruner(model, table, importance=importance, calibration=calib)
    policy = pruner.policy([0.5] * len(table))
    removed = pruner.removed_channels(policy)
    assert all(len(removed[u.name]) == u.channels // 2 for u in table)
    small = pruner.apply(policy)
    assert count_cost(small, example_input) == table.cost(policy)


def test_l1_removes_smallest_filters(example_input) -> None:
    model = make_model("vgg11")
    table = LayerTable.from_model(model, example_input)
    pruner = ChannelPruner(model, table, importance="l1")
    unit = table["features.4"]
    removed = pruner.removed_channels(pruner.policy({unit.name: 0.5}))[unit.name]
    norms = model.features[4].weight.detach().abs().flatten(1).sum(1)
    assert set(removed.tolist()) == set(torch.argsort(norms)[: unit.channels // 2].tolist())


def test_rounding_keeps_multiples(example_input) -> None:
    model = make_model("vgg11")
    table = LayerTable.from_model(model, example_input)
    pruner = ChannelPruner(model, table, round_to=8)
    small = pruner.apply(pruner.policy([0.37] * len(table)))
    widths = [m.out_channels for m in small.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w % 8 == 0 for w in widths)


def test_bad_policies_are_refused(example_input) -> None:
    model = make_model("resnet20")
    table = LayerTable.from_model(model, example_input)
    pruner = ChannelPruner(model, table)
    other = LayerTable.from_model(make_model("vgg11"), example_input)
    with pytest.raises(PruningError, match="another model"):
        pruner.apply(PruningPolicy.uniform(other, 0.5))
    with pytest.raises(PruningError, match=r"no\.such"):
        pruner.apply(PruningPolicy({"no.such": 0.5}))
    with pytest.raises(PruningError, match="ranks channels by 'l2'"):
        pruner.apply(PruningPolicy.uniform(table, 0.5, importance="l2"))
    with pytest.raises(PruningError, match="unknown importance"):
        ChannelPruner(model, table, importance="hessian")
    with pytest.raises(PruningError, match="taylor"):
        ChannelPruner(model, table, importance="taylor")
    pruner.mask(PruningPolicy.uniform(table, 0.5))
    with pytest.raises(PruningError, match="already masked"):
        pruner.mask(PruningPolicy.uniform(table, 0.5))
    pruner.unmask()


def _hand_made() -> torch.nn.Module:
    """conv0 (4 channels) -> conv1 reads them: conv0's filters grow with the channel
    index, conv1's weights on each input channel shrink with it."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2, 3),
    )  # fmt: skip
    with torch.no_grad():
        for c in range(4):
            model[0].weight[c].fill_(0.1 * (c + 1))
            model[2].weight[:, c].fill_(0.1 * (4 - c))
    return model.eval()


def test_consumer_l1_ranks_channels_by_the_weights_that_read_them() -> None:
    model = _hand_made()
    table = LayerTable.from_model(model, torch.zeros(1, 1, 6, 6))
    policy = {"consumer_l1": [], "l1": []}
    for importance in policy:
        pruner = ChannelPruner(model, table, importance=importance, round_to=1)
        removed = pruner.removed_channels(pruner.policy([0.5] * len(table)))
        policy[importance] = removed[table.names[0]].tolist()
    assert policy == {"consumer_l1": [2, 3], "l1": [0, 1]}  # AMC's choice, not the filters'
