"""Save/load with weights_only, ONNX parity, latency measurement."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model

from prunegym.pruners import (
    ChannelPruner,
    LayerTable,
    PruningError,
    PruningPolicy,
    export_onnx,
    load_pruned,
    measure_latency,
    onnx_max_abs_diff,
    save_pruned,
)
from prunegym.pruners.io import read_pruned


@pytest.fixture
def pruned_resnet(example_input):
    model = make_model("resnet20")
    table = LayerTable.from_model(model, example_input)
    pruner = ChannelPruner(model, table)
    return model, pruner.apply(PruningPolicy.uniform(table, 0.5)).eval()


def test_save_load_round_trip_with_builder(tmp_path, pruned_resnet, batch) -> None:
    _, small = pruned_resnet
    path = save_pruned(small, tmp_path / "m.pt", builder="prunegym.experiments.models:build_model",
                       builder_kwargs={"name": "resnet20", "in_channels": 3})  # fmt: skip
    payload = torch.load(path, weights_only=True)  # plain data only
    assert payload["format"] == "prunegym-pruned-model"
    again = load_pruned(path)
    with torch.no_grad():
        assert torch.equal(again(batch), small(batch))
    assert read_pruned(path)["history"][0]["policy"]["sparsities"]["stem.0"] == 0.5


def test_load_onto_a_given_dense_model_does_not_mutate_it(tmp_path, pruned_resnet, batch) -> None:
    _, small = pruned_resnet
    path = save_pruned(small, tmp_path / "m.pt")
    fresh = make_model("resnet20", seed=5)
    shapes = {k: v.shape for k, v in fresh.state_dict().items()}
    again = load_pruned(path, model=fresh)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == shapes
    with torch.no_grad():
        assert torch.equal(again(batch), small(batch))


def test_load_errors(tmp_path, pruned_resnet) -> None:
    _, small = pruned_resnet
    with pytest.raises(PruningError, match="no saved model"):
        load_pruned(tmp_path / "missing.pt")
    path = save_pruned(small, tmp_path / "m.pt")
    with pytest.raises(PruningError, match="no builder"):
        load_pruned(path)
    with pytest.raises(PruningError, match="does not fit"):
        load_pruned(path, model=make_model("vgg11"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PruningError, match="not a readable"):
        load_pruned(tmp_path / "junk.pt")


def test_failed_save_leaves_nothing(tmp_path, pruned_resnet, monkeypatch) -> None:
    _, small = pruned_resnet
    target = tmp_path / "out.pt"
    save_pruned(small, target)
    before = target.read_bytes()

    def half_write(obj, fh) -> None:
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_write)
    with pytest.raises(OSError, match="disk full"):
        save_pruned(small, target)
    assert target.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt"]  # no temporary left behind


def test_onnx_matches_torch(tmp_path, pruned_resnet, batch) -> None:
    _, small = pruned_resnet
    path = export_onnx(small, batch[:1], tmp_path / "m.onnx")
    assert path.stat().st_size > 0
    assert onnx_max_abs_diff(path, small, batch) < 1e-4  # dynamic batch: exported at 1, run at 4


def test_latency_reports_conditions(pruned_resnet, example_input) -> None:
    _, small = pruned_resnet
    threads = torch.get_num_threads()
    lat = measure_latency(small, example_input, threads=1, warmup=1, repeats=5)
    assert lat.threads == 1 and lat.batch_size == 1 and lat.device == "cpu"
    assert 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError):
        measure_latency(small, example_input, repeats=0)


def test_saved_files_are_world_readable(tmp_path, pruned_resnet) -> None:
    _, small = pruned_resnet
    path = save_pruned(small, tmp_path / "m.pt")
    assert path.stat().st_mode & 0o777 == 0o644  # mkstemp alone would give 0600
