"""LayerTable: units, execution order, analytic cost against a hand count."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from conftest import ARCHS, make_model
from torch import nn

from prunegym.experiments.models import MODELS, build_model
from prunegym.pruners import LayerTable, PruningError, PruningPolicy


def test_resnet20_cost_matches_hand_count(example_input: torch.Tensor) -> None:
    table = LayerTable.from_model(make_model("resnet20"), example_input)
    # Hand count (He et al. 2016, CIFAR ResNet-20 with 1x1 projection shortcuts):
    # stem 3->16 3x3 at 32x32; stage widths 16/32/64 at 32/16/8; 3 blocks of two 3x3 convs.
    hand = 3 * 16 * 9 * 32 * 32
    hand += 6 * 16 * 16 * 9 * 32 * 32
    hand += (16 * 32 * 9 + 5 * 32 * 32 * 9) * 16 * 16 + 16 * 32 * 16 * 16  # + 1x1 shortcut
    hand += (32 * 64 * 9 + 5 * 64 * 64 * 9) * 8 * 8 + 32 * 64 * 8 * 8
    hand += 64 * 10
    assert table.total_macs == hand
    params = 3 * 16 * 9 + 6 * 16 * 16 * 9 + 16 * 32 * 9 + 5 * 32 * 32 * 9 + 16 * 32
    params += 32 * 64 * 9 + 5 * 64 * 64 * 9 + 32 * 64 + 64 * 10 + 10
    assert table.total_params == params


def test_residual_stage_is_one_unit_and_order_is_execution_order(example_input) -> None:
    table = LayerTable.from_model(make_model("resnet20"), example_input)
    # stem + 3 stages' coupled channels + one unit per block's inner conv = 1+3+9 - 1
    # (stage 1 is coupled to the stem): 12 units.
    assert len(table) == 12
    stem = table["stem.0"]
    assert {"layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"} <= set(stem.layer_names)
    stage2 = table["layer2.0.conv2"]
    assert "layer2.0.shortcut.0" in stage2.layer_names
    orders = [next(lay.order for lay in table.layers if lay.name == u.name) for u in table]
    assert orders == sorted(orders)
    assert table.frozen == {"fc": "produces the model output"}


def test_depthwise_rides_with_its_producer() -> None:
    table = LayerTable.from_model(make_model("mobilenetv2"), torch.randn(1, 3, 32, 32))
    assert "depthwise" not in {u.kind for u in table}  # never a unit of its own
    # the stem's channels feed the first block's depthwise conv: one decision for both
    stem = {(m.name, m.direction) for m in table["features.0"].members}
    assert {
        ("features.0", "out"),
        ("features.3.block.0", "out"),
        ("features.3.block.3", "in"),
    } <= stem
    depthwise = {lay.name for lay in table.layers if lay.kind == "depthwise"}
    owned = {m.name for u in table for m in u.members if m.direction == "out"}
    assert depthwise <= owned


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("in_channels", [1, 3])
def test_every_zoo_model_has_a_table(name: str, in_channels: int) -> None:
    model = build_model(name, in_channels=in_channels)
    table = LayerTable.from_model(model, torch.randn(1, in_channels, 32, 32))
    assert len(table) > 0
    assert table.total_macs > 0
    assert all(u.channels > 0 for u in table)


@pytest.mark.parametrize("arch", ARCHS)
def test_weight_granularity_has_one_unit_per_layer(arch: str, example_input) -> None:
    table = LayerTable.from_model(make_model(arch), example_input, granularity="weight")
    assert [u.name for u in table] == [lay.name for lay in table.layers]
    assert sum(u.channels for u in table) == sum(lay.weight_numel for lay in table.layers)


def test_cost_is_fast_for_a_50_unit_table() -> None:
    table = LayerTable.from_model(make_model("resnet56"), torch.randn(1, 3, 32, 32))
    table = LayerTable.from_model(make_model("mobilenetv2"), torch.randn(1, 3, 32, 32))
    kept = table.kept_counts(np.full(len(table), 0.5))
    table.cost_of_kept(kept)
    start = time.perf_counter()
    for _ in range(200):
        table.cost_of_kept(kept)
    per_call = (time.perf_counter() - start) / 200
    assert per_call < 1e-3  # the env calls this every step (measured ~25 us)


def test_training_mode_and_weights_are_preserved(example_input) -> None:
    model = make_model("resnet20").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    LayerTable.from_model(model, example_input)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_ignored_layers_are_frozen(example_input) -> None:
    model = make_model("vgg11")
    table = LayerTable.from_model(model, example_input, ignored=["features.0"])
    assert "features.0" not in table.names
    assert table.frozen["features.0"] == "ignored by the user"
    with pytest.raises(PruningError, match="not a module"):
        LayerTable.from_model(model, example_input, ignored=["no.such.layer"])


class _NoWeights(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_bad_inputs_raise_clear_errors(example_input) -> None:
    with pytest.raises(PruningError, match="no conv or linear"):
        LayerTable.from_model(_NoWeights(), example_input)
    with pytest.raises(PruningError, match="does not run"):
        LayerTable.from_model(make_model("resnet20"), torch.randn(1, 5, 32, 32))
    with pytest.raises(PruningError, match="no prunable unit"):
        LayerTable.from_model(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.randn(1, 12))
    with pytest.raises(PruningError, match="granularity"):
        LayerTable.from_model(make_model("resnet20"), example_input, granularity="block")


def test_a_model_with_nothing_to_prune_says_why() -> None:
    with pytest.raises(PruningError, match=r"no prunable unit.*1: produces the model output"):
        LayerTable.from_model(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.randn(1, 12))


def test_policy_cost_uses_rounding(example_input) -> None:
    table = LayerTable.from_model(make_model("resnet20"), example_input)
    p = PruningPolicy.uniform(table, 0.3, round_to=8)
    kept = p.kept(table)
    assert kept["stem.0"] == 16  # 16 * 0.7 = 11.2 rounds up to 16
    assert kept["layer3.1.conv1"] == 48  # 64 * 0.7 = 44.8 -> 48
    assert PruningPolicy.uniform(table, 0.99).kept(table)["stem.0"] == 8  # one multiple
    assert table.cost(PruningPolicy.uniform(table, 0.0)).macs == table.total_macs


@pytest.mark.parametrize("arch", ["mobilenetv2", "resnet20"])
def test_layer_widths_match_the_physically_pruned_layers(arch: str, example_input) -> None:
    from prunegym.pruners import ChannelPruner

    model = make_model(arch)
    table = LayerTable.from_model(model, example_input)
    policy = PruningPolicy.uniform(table, 0.5)
    small = ChannelPruner(model, table).apply(policy)
    widths = table.layer_widths(table.kept_counts(policy.as_array(table)))
    modules = dict(small.named_modules())
    real = [
        (modules[lay.name].in_channels, modules[lay.name].out_channels, modules[lay.name].groups)
        if isinstance(modules[lay.name], nn.Conv2d)
        else (modules[lay.name].in_features, modules[lay.name].out_features, 1)
        for lay in table.layers
    ]
    assert list(zip(widths.inputs, widths.outputs, widths.groups, strict=True)) == real
    varies_in, varies_out = table.varying_layers()
    changed = [(i, o) != (lay.in_channels, lay.out_channels)
               for (i, o, _), lay in zip(real, table.layers, strict=True)]  # fmt: skip
    assert list(varies_in | varies_out) == changed


class _Shared(nn.Module):
    """A conv applied ``calls`` times (weight sharing) between a stem and a head."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.shared = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        for _ in range(self.calls):
            x = torch.relu(self.shared(x))
        return self.head(x.mean((2, 3)))


def test_a_module_called_twice_counts_both_calls(example_input) -> None:
    from prunegym.pruners import count_cost

    once, twice = count_cost(_Shared(1), example_input), count_cost(_Shared(2), example_input)
    shared_call = 16 * 16 * 9 * 32 * 32
    assert twice.macs - once.macs == shared_call  # doubled MACs of the shared conv
    assert twice.params == once.params  # one set of weights
    table = LayerTable.from_model(_Shared(2), example_input)
    assert table.total_macs == twice.macs
    assert next(lay for lay in table.layers if lay.name == "shared").macs == 2 * shared_call


def test_a_shared_module_prunes_with_exact_macs(example_input, batch) -> None:
    from prunegym.pruners import ChannelPruner, count_cost

    torch.manual_seed(0)
    model = _Shared(2).eval()
    table = LayerTable.from_model(model, example_input)
    pruner = ChannelPruner(model, table)
    policy = PruningPolicy.uniform(table, 0.5)
    small = pruner.apply(policy)
    with torch.no_grad(), pruner.masked(policy):
        assert torch.allclose(model(batch), small(batch), atol=1e-5)
    assert table.cost(policy) == count_cost(small, example_input)
    assert table.cost(policy).macs < table.total_macs
    assert table.names == ["stem"]  # the shared conv's input and output channels are coupled
    assert {"stem", "shared", "head"} <= set(table["stem"].layer_names)
