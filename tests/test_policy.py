"""PruningPolicy: validation, JSON round trip."""

from __future__ import annotations

import pytest
from conftest import make_model

from prunegym.pruners import LayerTable, PruningError, PruningPolicy


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_sparsity_outside_range_names_the_unit(bad: float) -> None:
    with pytest.raises(PruningError, match="'conv7'"):
        PruningPolicy({"conv7": bad})


def test_json_round_trip(tmp_path, example_input) -> None:
    table = LayerTable.from_model(make_model("resnet20"), example_input)
    policy = PruningPolicy.uniform(table, 0.25, importance="fpgm", round_to=4)
    path = tmp_path / "policy.json"
    policy.to_json(path)
    again = PruningPolicy.from_json(path)
    assert again == policy
    assert PruningPolicy.from_json(policy.to_json()) == policy
    assert table.cost(again) == table.cost(policy)


def test_unknown_unit_and_wrong_model_are_refused(example_input) -> None:
    table = LayerTable.from_model(make_model("resnet20"), example_input)
    with pytest.raises(PruningError, match="'fc'"):
        PruningPolicy({"fc": 0.5}).validate(table)
    other = LayerTable.from_model(make_model("vgg11"), example_input)
    with pytest.raises(PruningError, match="another model"):
        PruningPolicy.uniform(other, 0.5).validate(table)
    with pytest.raises(PruningError, match="expected 12"):
        PruningPolicy.from_array(table, [0.5, 0.5])


def test_bad_json(tmp_path) -> None:
    with pytest.raises(PruningError, match="does not exist"):
        PruningPolicy.from_json(tmp_path / "missing.json")
    with pytest.raises(PruningError, match="valid JSON"):
        PruningPolicy.from_json("{not json")
    with pytest.raises(PruningError, match="sparsities"):
        PruningPolicy.from_json('{"a": 1}')
