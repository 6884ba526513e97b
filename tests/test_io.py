"""Save/load with weights_only, ONNX parity, latency measurement."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torchvision
from conftest import make_model
from torch import nn

from prunegym.experiments.models import build_model
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


def _crafted(path, builder: str, kwargs: dict) -> None:
    """A pruned-model file as an attacker would write it: data naming any builder."""
    payload = {
        "format": "prunegym-pruned-model", "state_dict": {}, "shapes": {}, "history": "[]",
        "builder": builder, "builder_kwargs": json.dumps(kwargs), "meta": "{}",
    }  # fmt: skip
    torch.save(payload, path)


def test_a_file_naming_any_other_builder_runs_nothing(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    _crafted(path, "os:system", {"command": f"touch {marker}"})
    with pytest.raises(PruningError, match=r"'os:system' is not on the allow-list") as err:
        load_pruned(path)
    assert not marker.exists()
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)
    # a module on the path is not even imported when a file names it
    (tmp_path / "prunegym_canary.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _crafted(path, "prunegym_canary:build", {})
    with pytest.raises(PruningError, match="prunegym_canary:build"):
        load_pruned(path)
    assert not marker.exists() and "prunegym_canary" not in sys.modules
    with pytest.raises(PruningError, match="allow-list"):
        save_pruned(nn.Linear(2, 2), tmp_path / "m.pt", builder="os:system")


def test_allow_listed_and_caller_builders_rebuild(tmp_path, batch) -> None:
    torch.manual_seed(0)
    dense = build_model("tv:resnet18", num_classes=10).eval()
    path = save_pruned(dense, tmp_path / "tv.pt", builder="torchvision.models:resnet18",
                       builder_kwargs={"num_classes": 10})  # fmt: skip
    with torch.no_grad():
        assert torch.equal(load_pruned(path)(batch), dense(batch))
        by_callable = load_pruned(path, builder=torchvision.models.resnet18)
        assert torch.equal(by_callable(batch), dense(batch))
    _crafted(path, "torchvision.models:resnet18", {"weights": "DEFAULT"})
    with pytest.raises(PruningError, match="weights must be None"):
        load_pruned(path)  # nothing is downloaded
    _crafted(path, "torchvision.models:no_such_net", {})
    with pytest.raises(PruningError, match="not on the allow-list"):
        load_pruned(path)


def test_unsafe_file_errors_never_suggest_unsafe_loading(tmp_path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save({"format": "prunegym-pruned-model", "obj": _Pickled()}, path)
    with pytest.raises(PruningError, match="not a readable") as err:
        load_pruned(path)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


class _Pickled:
    """An arbitrary object: torch.save pickles it, weights_only loading must refuse it."""
