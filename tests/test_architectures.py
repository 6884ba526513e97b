"""Architectures beyond plain CNNs: each prunes with masked == physical and exact MACs."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import randomize_batchnorm
from pruning_checks import prunes_exactly, tv
from torch import nn

from prunegym.pruners import ChannelPruner, LayerTable, PruningPolicy, count_cost


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


class _GroupedNet(nn.Module):
    """stem (3->16) -> grouped 3x3 conv (16->16, 4 groups) -> 1x1 conv (16->32) -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.grouped = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(16)
        )
        self.expand = nn.Conv2d(16, 32, 1)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.grouped(torch.relu(self.stem(x))))
        return self.head(torch.relu(self.expand(x)).mean((2, 3)))


def test_grouped_conv_units_remove_the_same_positions_in_every_group() -> None:
    torch.manual_seed(0)
    model = randomize_batchnorm(_GroupedNet()).eval()
    table = LayerTable.from_model(model, torch.randn(1, 3, 16, 16))
    assert table.names == ["stem.0", "grouped.0", "expand"] and not table.frozen.keys() - {"head"}
    assert list(table.channel_groups) == [4, 4, 1]
    policy = PruningPolicy.uniform(table, 0.5, round_to=1)
    assert policy.kept(table) == {"stem.0": 8, "grouped.0": 8, "expand": 16}
    assert PruningPolicy.uniform(table, 0.3, round_to=1).kept(table)["stem.0"] == 12  # 4 | kept
    assert PruningPolicy.uniform(table, 0.3, round_to=8).kept(table)["stem.0"] == 16  # 8 | kept
    pruner = ChannelPruner(model, table, round_to=1)
    removed = pruner.removed_channels(policy)["stem.0"]
    positions = sorted({int(c) % 4 for c in removed})
    assert sorted(removed.tolist()) == sorted(p + 4 * g for p in positions for g in range(4))
    # hand count at 16x16: stem 3->8, grouped 8->8 (2 inputs per group), expand 8->16, head
    hand = (3 * 8 * 9 + 8 * 2 * 9 + 8 * 16) * 16 * 16 + 16 * 10
    assert table.cost(policy).macs == hand
    small = prunes_exactly(model, table, policy, 16)
    assert small.grouped[0].groups == 4 and small.grouped[0].weight.shape == (8, 2, 3, 3)


@pytest.mark.parametrize(("name", "units", "grouped"), [("regnet_x_400mf", 49, 44)])
def test_regnet_x_prunes_its_grouped_convs(name: str, units: int, grouped: int) -> None:
    model = tv(name)
    table = LayerTable.from_model(model, torch.randn(1, 3, 64, 64))
    # before grouped-conv support: 5 units, every block's grouped conv frozen
    assert len(table) == units and int((table.channel_groups > 1).sum()) == grouped
    assert not any("grouped" in why for why in table.frozen.values())
    policy = PruningPolicy.uniform(table, 0.3)
    kept = table.kept_counts(policy.as_array(table), 8)
    assert all(k % g == 0 for k, g in zip(kept, table.channel_groups, strict=True))
    small = prunes_exactly(model, table, 0.3, 64)
    for module in small.modules():
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            assert module.in_channels % module.groups == module.out_channels % module.groups == 0


def test_resnext50_prunes_its_grouped_convs() -> None:
    model = tv("resnext50_32x4d")
    table = LayerTable.from_model(model, torch.randn(1, 3, 64, 64))
    assert len(table) == 37 and int((table.channel_groups > 1).sum()) == 32  # was 5 units
    prunes_exactly(model, table, 0.3, 64)


def test_the_action_wall_steps_grouped_units_by_whole_groups() -> None:
    from prunegym.envs.targets import TargetContext, make_target
    from prunegym.envs.wall import ActionWall

    table = LayerTable.from_model(_GroupedNet(), torch.randn(1, 3, 16, 16))
    total = table.total_macs
    goal = make_target("macs", 0.5, TargetContext(table, nn.Identity(), torch.zeros(1)))
    wall = ActionWall(table.channels, "channel", goal, 0.0, 0.9, round_to=2,
                      channel_groups=table.channel_groups)  # fmt: skip
    assert list(wall.steps) == [4, 4, 2]  # the smallest multiple of the groups >= round_to
    allowed = wall.allowed_kept(0, table.channels.copy())
    assert allowed % 4 == 0 and table.cost_of_kept([allowed, 4, 4]).macs <= 0.5 * total
    # every level the wall offers the unit is a whole number of groups
    assert all(wall.level(0, i) % 4 == 0 for i in range(wall.level_count(0, allowed)))


def test_the_latency_lookup_times_grouped_convs_at_whole_groups() -> None:
    from prunegym.envs.latency_table import LatencyTable

    model, x = _GroupedNet().eval(), torch.randn(1, 3, 16, 16)
    table = LayerTable.from_model(model, x)
    lookup = LatencyTable(model, table, x, levels=(0.3, 1.0), warmup=0, repeats=1,
                          dense_repeats=1)  # fmt: skip
    grouped = next(lk for lk in lookup.lookups if table.layers[lk.index].name == "grouped.0")
    assert list(grouped.ins) == [4, 16] and list(grouped.outs) == [4, 16]  # multiples of 4


def test_shufflenet_v2_prunes_inside_its_branches() -> None:
    model = tv("shufflenet_v2_x0_5")
    table = LayerTable.from_model(model, torch.randn(1, 3, 64, 64))
    # one unit per block: the first conv of the main branch with its depthwise conv
    assert len(table) == 16 and all(u.name.endswith(".branch2.0") for u in table)
    assert {u.region for u in table} == set(table.regions) and len(table.regions) == 16
    assert "stage2.0.branch2.3" in table["stage2.0.branch2.0"].layer_names  # its depthwise
    shuffled = [n for n, why in table.frozen.items() if "traces only on its own" in why]
    assert "stage2.1.branch2.5" in shuffled  # the branch output meets the channel shuffle
    prunes_exactly(model, table, 0.3, 64)


class _Shuffled(nn.Module):
    """conv -> channel shuffle -> conv: Torch-Pruning traces it but misplaces the channels."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = (x := torch.relu(self.a(x))).shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.head(torch.relu(self.b(x)).mean((2, 3)))


def test_a_unit_whose_removal_differs_from_its_mask_is_frozen() -> None:
    torch.manual_seed(0)
    model = _Shuffled().eval()
    table = LayerTable.from_model(model, torch.randn(1, 3, 16, 16))
    assert table.names == ["b"] and "removing its channels" in table.frozen["a"]
    example, batch = torch.randn(1, 3, 16, 16), torch.randn(2, 3, 16, 16)
    pruner = ChannelPruner(model, table, round_to=1)
    policy = PruningPolicy.uniform(table, 0.5, round_to=1)
    small = pruner.apply(policy)
    with torch.no_grad(), pruner.masked(policy):
        assert torch.allclose(model(batch), small(batch), atol=1e-5)
    assert table.cost(policy) == count_cost(small, example)


def _tiny_swin(v2: bool) -> nn.Module:
    from torchvision.models import swin_transformer as swin

    torch.manual_seed(0)
    kw = {"block": swin.SwinTransformerBlockV2, "downsample_layer": swin.PatchMergingV2}
    model = swin.SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4],
                                 window_size=[4, 4], num_classes=10,
                                 **(kw if v2 else {}))  # fmt: skip
    return model.eval()


@pytest.mark.parametrize("v2", [False, True])
def test_swin_blocks_prune_their_mlps_within_seconds(v2: bool) -> None:
    model = _tiny_swin(v2)
    start = time.perf_counter()
    table = LayerTable.from_model(model, torch.randn(1, 3, 64, 64))
    assert time.perf_counter() - start < 30  # generous: about 2 s on one busy core
    assert table.names == [f"features.{s}.{b}.mlp.0" for s in (1, 3) for b in (0, 1)]
    prunes_exactly(model, table, 0.3, 64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_t", "swin_v2_t"])
def test_torchvision_swin_tables_build_in_seconds(name: str) -> None:
    model = tv(name)
    start = time.perf_counter()
    table = LayerTable.from_model(model, torch.randn(1, 3, 224, 224))
    assert time.perf_counter() - start < 30  # was more than 150 s (and gigabytes)
    assert len(table) == 12 and all(u.name.endswith(".mlp.0") for u in table)
    prunes_exactly(model, table, 0.3, 224)


def test_a_walk_that_does_not_converge_is_refused() -> None:
    from prunegym.pruners import UnsupportedModelError
    from prunegym.pruners.graph import PRUNABLE_TYPES, build_graph

    graph = build_graph(tv("resnet18"), torch.randn(1, 3, 32, 32), budget=100)
    with pytest.raises(UnsupportedModelError, match="do not converge"):
        list(graph.groups([], PRUNABLE_TYPES))


class _Ghost(nn.Module):
    """A ghost module (GhostNet): half the channels from a conv, half from a cheap
    depthwise conv on them, concatenated and sliced; then a consumer and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.primary = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.cheap = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8))
        self.consumer = nn.Conv2d(12, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary(x)
        x = torch.cat([x1, self.cheap(x1)], dim=1)[:, :12]
        return self.head(torch.relu(self.consumer(x)).mean((2, 3)))


def test_a_unit_split_unevenly_by_a_slice_is_frozen_and_the_rest_is_exact() -> None:
    torch.manual_seed(0)
    model = randomize_batchnorm(_Ghost()).eval()
    table = LayerTable.from_model(model, torch.randn(1, 3, 16, 16))  # used to raise KeyError
    assert "removing its channels" in table.frozen["primary.0"]  # TP misreads the slice
    assert table.names == ["consumer"]
    policy = PruningPolicy.uniform(table, 0.5, round_to=1)
    prunes_exactly(model, table, policy, 16)


class _Split(nn.Module):
    """conv -> split in two halves -> a conv on each half -> sum -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b, self.c = nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = torch.relu(self.a(x)).split(8, dim=1)
        return self.head(torch.relu(self.b(x1) + self.c(x2)).mean((2, 3)))


def test_a_unit_whose_cost_depends_on_which_channels_go_is_frozen() -> None:
    table = LayerTable.from_model(_Split(), torch.randn(1, 3, 16, 16))
    assert "holds only part of its channels (a slice or split)" in table.frozen["a"]
    assert table.names == ["b"]  # b and c share their outputs through the sum
