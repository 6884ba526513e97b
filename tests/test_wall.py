"""The action wall: every sequence of requests ends inside the budget, after rounding."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import make_model
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunegym.envs.targets import TargetContext, make_target
from prunegym.envs.wall import ActionWall, UnreachableBudgetError
from prunegym.pruners import LayerTable

_TABLES: dict[tuple[str, str], LayerTable] = {}


def table_for(arch: str, granularity: str = "channel") -> LayerTable:
    key = (arch, granularity)
    if key not in _TABLES:
        model = make_model(arch, in_channels=1)
        _TABLES[key] = LayerTable.from_model(model, torch.zeros(1, 1, 8, 8), granularity)
    return _TABLES[key]


def make_wall(
    table: LayerTable, target: str, ratio: float, lo: float = 0.0, hi: float = 0.8, r: int = 8
) -> ActionWall:
    goal = make_target(target, ratio, TargetContext(table, nn.Identity(), torch.zeros(1)))
    assert goal.budget == math.floor(Fraction(ratio) * getattr(table.total, target))
    return ActionWall(table.channels, table.granularity, goal, lo, hi, r)


def cost_with(wall: ActionWall, kept: np.ndarray, t: int, count: int) -> float:
    """The cost with units < t at ``kept``, unit t at ``count``, later units at their fewest."""
    trial = wall.kept_min.copy()
    trial[:t] = kept[:t]
    trial[t] = count
    return float(wall.target.cost(trial))


def run(wall: ActionWall, requests: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Drive the wall with requested sparsities; return (applied sparsities, kept).

    Each unit keeps the rounded count of its request, or the most the wall allows when
    that is fewer. Checks every step: the wall is tight (the allowed count is the unit's
    largest rounded level that keeps the budget reachable; one more level would not),
    the allowed count is one of the unit's levels, and the applied sparsity keeps it.
    """
    kept = wall.channels.copy()
    out = np.zeros(len(requests))
    for t, s in enumerate(requests):
        allowed = wall.allowed_kept(t, kept)
        assert cost_with(wall, kept, t, allowed) <= wall.target.budget
        if allowed < wall.kept_max[t]:
            one_more = min(allowed + wall.round_to, int(wall.kept_max[t]))
            assert cost_with(wall, kept, t, one_more) > wall.target.budget, (t, allowed)
        levels = wall.level_count(t, allowed)
        assert wall.level(t, levels - 1) == allowed and levels >= 1
        asked = min(max(s, wall.min_sparsity), wall.max_sparsity)
        kept[t] = min(wall.kept_one(t, asked), allowed)  # the request, or the wall
        out[t] = wall.sparsity_for_kept(t, int(kept[t]))
        assert out[t] >= asked or kept[t] == wall.kept_one(t, asked)  # never more kept
    return out, kept


@settings(max_examples=60, deadline=None)
@given(
    arch=st.sampled_from(["resnet20", "mobilenetv2", "vgg11"]),
    target=st.sampled_from(["macs", "params"]),
    position=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_any_request_sequence_ends_within_budget(
    arch: str, target: str, position: float, data: st.DataObject
) -> None:
    table = table_for(arch)
    floor = getattr(table.cost_of_kept(table.kept_counts(np.full(len(table), 0.8), 8)), target)
    lowest = floor / getattr(table.total, target)
    ratio = min(lowest + position * (1.0 - lowest) + 1e-9, 1.0)
    wall = make_wall(table, target, ratio)
    requests = data.draw(st.lists(st.floats(-0.5, 1.5), min_size=len(table), max_size=len(table)))
    sparsities, kept = run(wall, requests)
    assert np.array_equal(table.kept_counts(sparsities, 8), kept)  # the policy rounds the same
    cost = getattr(table.cost_of_kept(kept), target)
    # exact: integer cost against the exact rational budget, no tolerance
    assert Fraction(cost) <= Fraction(ratio) * getattr(table.total, target)
    assert np.all(sparsities >= 0.0) and np.all(sparsities <= 0.8)


@settings(max_examples=30, deadline=None)
@given(requests=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5), ratio=st.floats(0.1, 1.0))
def test_weight_granularity_wall_is_exact(requests: list[float], ratio: float) -> None:
    table = table_for("smallcnn", "weight")  # 4 convs + the classifier: 5 units
    wall = make_wall(table, "params", ratio, hi=0.95, r=1)
    sparsities, kept = run(wall, requests)
    assert np.array_equal(table.kept_counts(sparsities), kept)
    assert Fraction(table.cost_of_kept(kept).params) <= Fraction(ratio) * table.total.params


def test_loose_budget_changes_nothing() -> None:
    table = table_for("resnet20")
    wall = make_wall(table, "macs", 1.0)
    requests = list(np.linspace(0.0, 0.8, len(table)))
    sparsities, _ = run(wall, requests)
    wanted = table.kept_counts(np.array(requests), 8)
    assert np.array_equal(table.kept_counts(sparsities, 8), wanted)


def test_tight_budget_clips_late_units_and_lands_on_it() -> None:
    table = table_for("resnet20")
    wall = make_wall(table, "macs", 0.5)
    sparsities, kept = run(wall, [0.0] * len(table))
    assert sparsities[0] == 0.0 and sparsities[-1] > 0.0
    macs = table.cost_of_kept(kept).macs
    assert macs <= wall.target.budget
    # it lands on the budget: one more level of the last clipped unit would break it
    last = max(t for t in range(len(table)) if kept[t] < wall.kept_max[t])
    more = kept.copy()
    more[last] += wall.round_to
    assert table.cost_of_kept(more).macs > wall.target.budget


class _Overcautious(ActionWall):
    """A wall that always allows only the fewest channels: inside the budget, not tight."""

    def allowed_kept(self, unit: int, kept: np.ndarray) -> int:
        return int(self.kept_min[unit])


def test_the_tightness_check_rejects_an_overcautious_wall() -> None:
    table = table_for("resnet20")
    good = make_wall(table, "macs", 0.5)
    cautious = _Overcautious(table.channels, "channel", good.target, 0.0, 0.8, 8)
    run(good, [0.0] * len(table))
    with pytest.raises(AssertionError):
        run(cautious, [0.0] * len(table))


def test_unreachable_budget_states_the_smallest_reachable_ratio() -> None:
    table = table_for("resnet20")
    floor = table.cost_of_kept(table.kept_counts(np.full(len(table), 0.8), 8)).macs
    smallest = floor / table.total.macs
    with pytest.raises(
        UnreachableBudgetError, match=f"smallest reachable macs ratio is {smallest:.4g}"
    ):
        make_wall(table, "macs", smallest * 0.9)
    assert issubclass(UnreachableBudgetError, ValueError)
    make_wall(table, "macs", smallest + 1e-9)  # the boundary itself is reachable


def test_sparsity_for_kept_round_trips_every_level() -> None:
    for arch, granularity, r in (("mobilenetv2", "channel", 8), ("smallcnn", "channel", 3)):
        table = table_for(arch, granularity)
        wall = make_wall(table, "macs", 1.0, lo=0.1, hi=0.9, r=r)
        for u in range(len(table)):
            lo, hi = int(wall.kept_min[u]), int(wall.kept_max[u])
            for j in range(0, -(-(hi - lo) // r) + 1):
                k = wall.level(u, j)
                s = wall.sparsity_for_kept(u, k)
                assert 0.1 <= s <= 0.9 and wall.kept_one(u, s) == k
