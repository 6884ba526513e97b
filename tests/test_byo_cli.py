"""Bring your own model, weights and data through the command line: ``prunegym search``,
``export`` and ``train`` on a model and a dataset defined in a package of the test's own,
with plain ``state_dict`` files and training checkpoints as ``workload.checkpoint``."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from prunegym import load_pruned
from prunegym.experiments.checkpoint import load_checkpoint
from prunegym.experiments.cli import main
from prunegym.experiments.config import load_config
from prunegym.experiments.data import build_data_like
from prunegym.experiments.export import load_dense
from prunegym.experiments.workload import prepare_workload

NETS_PY = """
from torch import nn

def tiny(width=8, classes=10):
    # takes neither in_channels nor num_classes: it knows its own input
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes),
    )

def sized(in_channels, num_classes, width=8):
    # sized by the data it is trained on
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )
"""

DATA_PY = """
import torch
from prunegym.experiments.data import DataSplits

def blobs(n=240, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 8, 8, generator=gen) * 0.5 + y.view(-1, 1, 1, 1).float()
    cut = n * 4 // 5
    return DataSplits.from_tensors((x[:cut], y[:cut]), test=(x[cut:], y[cut:]),
                                   reward_val_size=24, seed=seed)

def wrong(n=240):
    return {"train": n}
"""

TINY = {"width": 6, "classes": 3}
RUN = {"progress": False, "tensorboard": False, "checkpoint_every": 1}


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package of the test's own on sys.path (a fresh name per test)."""
    name = "byocli_" + "".join(c if c.isalnum() else "_" for c in tmp_path.name)
    root = tmp_path / "src" / name
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "nets.py").write_text(textwrap.dedent(NETS_PY))
    (root / "data.py").write_text(textwrap.dedent(DATA_PY))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    yield name
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def _user_weights(pkg: str, path: Path, wrap: str | None = None, **kwargs: int) -> dict:
    """What a user saves: ``torch.save(model.state_dict(), path)`` (or a training dict)."""
    import importlib

    torch.manual_seed(0)
    model = importlib.import_module(f"{pkg}.nets").tiny(**{**TINY, **kwargs})
    state = model.state_dict()
    torch.save(state if wrap is None else {"epoch": 7, wrap: state, "best_acc": 0.9}, path)
    return state


def _config(tmp_path: Path, pkg: str, checkpoint: Path, **workload: object) -> Path:
    cfg = {
        "seed": 0,
        "workload": {"model": f"{pkg}.nets:tiny", "model_kwargs": TINY,
                     "checkpoint": str(checkpoint), "dataset": f"{pkg}.data:blobs",
                     "dataset_options": {"n": 240}, **workload},
        "env": {"ratio": 0.6, "round_to": 1},
        "search": {"agent": "random", "episodes": 3},
        "run": RUN,
    }  # fmt: skip
    path = tmp_path / "byo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str], code: int, *fragments: str) -> str:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("prunegym: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_search_and_export_on_own_model_plain_state_dict_and_own_data(
    pkg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _user_weights(pkg, tmp_path / "weights.pt")
    config, run = _config(tmp_path, pkg, tmp_path / "weights.pt"), tmp_path / "run"
    assert main(["search", "--config", str(config), "--out", str(run)]) == 0, capsys.readouterr()
    assert "random: 3 episodes" in capsys.readouterr().out

    # The run keeps the dense model: the user's own weights, with what rebuilds it.
    base = load_checkpoint(run / "base_model.pt")
    assert base.model_spec == {"name": f"{pkg}.nets:tiny", "in_channels": None,
                               "num_classes": None, "kwargs": TINY}  # fmt: skip
    assert base.state_dict.keys() == state.keys()
    assert all(torch.equal(base.state_dict[k], v) for k, v in state.items())
    assert base.metadata["dataset"]["name"] == f"{pkg}.data:blobs"
    assert base.metadata["dataset"]["sizes"] == {"train": 168, "reward_val": 24, "test": 48}

    argv = ["export", str(run), "--epochs", "1", "--latency-batch", "4", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads((run / "export" / "metrics.json").read_text())
    assert metrics["model"]["kwargs"] == TINY and metrics["dataset"] == f"{pkg}.data:blobs"
    assert metrics["pruned"]["macs"] <= 0.6 * metrics["dense"]["macs"]
    # The shipped model rebuilds through the user's function and its keywords.
    pruned = load_pruned(run / "export" / "model.pt")
    data = build_data_like(base.metadata["dataset"])
    x, _ = data.tensors("test")
    with torch.inference_mode():
        assert pruned(x).shape == (len(x), 3)
    assert pruned[0].out_channels <= TINY["width"]

    # Without its kept copy, export loads workload.checkpoint (plain weights) as search did.
    (run / "base_model.pt").rename(tmp_path / "kept.pt")
    dense, _, spec = load_dense(run, load_config(run / "config.yaml"))
    assert spec == base.model_spec
    assert all(torch.equal(dense.state_dict()[k], v) for k, v in state.items())
    # A resumed search prunes the kept copy, even when the user's file has gone.
    (tmp_path / "kept.pt").rename(run / "base_model.pt")
    (tmp_path / "weights.pt").unlink()
    argv = ["search", "--resume", str(run), "--set", "search.episodes=4"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "random: 4 episodes" in capsys.readouterr().out


def test_a_training_checkpoint_loads_into_the_configured_model(pkg: str, tmp_path: Path) -> None:
    state = _user_weights(pkg, tmp_path / "ckpt.pt", wrap="model_state_dict")
    cfg = load_config(_config(tmp_path, pkg, tmp_path / "ckpt.pt"))
    workload = prepare_workload(cfg)
    workload.env.close()
    loaded = workload.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not workload.model.training and not workload.in_train_file
    assert workload.data.num_classes == 3 and len(workload.data.reward_val) == 24


@pytest.mark.parametrize(
    ("wrap", "weights", "sets", "fragments"),
    [
        (None, {"width": 4}, [], ["does not fit workload.model",
                                  "'0.weight' has shape (4, 1, 3, 3)", "model's is (6, 1, 3, 3)"]),
        ("state_dict", {"classes": 5}, [], ["'8.weight' has shape (5, 6)"]),
        (None, {}, ["workload.model_kwargs={width: 6}"], ["'8.weight' has shape (3, 6)",
                                                          "the model's is (10, 6)"]),
        (None, {}, ["workload.model=null"], ["holds weights only (a plain state_dict), no model",
                                             "set workload.model"]),
        (None, {}, ["workload.dataset=PKG.data:wrong"], ["returned 'dict'; expected a DataSplits"]),
        # weights that fit, and then the usual preflight checks on the configured model
        ("model_state_dict", {"classes": 5}, ["workload.model_kwargs={width: 6, classes: 5}"],
         ["the model outputs 5 classes but", "has 3"]),
        (None, {}, ["env.ratio=0.01"], ["target ratio 0.01 is unreachable"]),
    ],
)  # fmt: skip
def test_a_checkpoint_or_dataset_that_does_not_fit_is_one_line(
    pkg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    wrap: str | None, weights: dict, sets: list[str], fragments: list[str],
) -> None:  # fmt: skip
    _user_weights(pkg, tmp_path / "weights.pt", wrap=wrap, **weights)
    config, run = _config(tmp_path, pkg, tmp_path / "weights.pt"), tmp_path / "run"
    overrides = [a for s in sets for a in ("--set", s.replace("PKG", pkg))]
    code = main(["search", "--config", str(config), *overrides, "--out", str(run)])
    _one_error_line(capsys, code, *fragments)
    assert not run.exists()  # nothing left behind


def test_train_own_model_with_dataset_options_round_trips(
    pkg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trained"
    argv = ["train", "--model", f"{pkg}.nets:sized", "--model-kwarg", "width=6",
            "--dataset", "digits", "--dataset-option", "image_size=16", "--channels", "3",
            "--epochs", "2", "--batch-size", "64", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    _, err = capsys.readouterr()
    assert err.startswith("prunegym: epoch 1/2 took ") and err.rstrip().endswith(" to go")

    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.model_spec == {"name": f"{pkg}.nets:sized", "in_channels": 3,
                               "num_classes": 10, "kwargs": {"width": 6}}  # fmt: skip
    options = ckpt.metadata["dataset"]["options"]
    assert options["image_size"] == [16, 16] and options["channels"] == 3
    data = build_data_like(ckpt.metadata["dataset"])
    assert data.example_input.shape == (1, 3, 16, 16)
    model = ckpt.build_model(trusted_code=(f"{pkg}.nets:sized",))  # the caller names it
    assert model[0].in_channels == 3 and model[0].out_channels == 6

    # A search on the trained file rebuilds the same model and the same padded RGB data.
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({
        "workload": {"checkpoint": str(out / "model.pt"), "model": f"{pkg}.nets:sized",
                     "model_kwargs": {"width": 6}},
        "env": {"ratio": 0.6, "round_to": 1}, "search": {"agent": "random", "episodes": 2},
        "run": RUN,
    }))  # fmt: skip
    run = tmp_path / "run"
    assert main(["search", "--config", str(config), "--out", str(run)]) == 0
    assert "random: 2 episodes" in capsys.readouterr().out
    assert not (run / "base_model.pt").exists()  # the train file rebuilds itself
    code = main(["search", "--config", str(config), "--out", str(tmp_path / "other"),
                 "--set", "workload.model_kwargs.width=8"])  # fmt: skip
    _one_error_line(capsys, code, "workload.model_kwargs are {'width': 8}", "{'width': 6}")


def test_the_command_that_makes_a_missing_checkpoint_carries_the_keywords(
    pkg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, pkg, tmp_path / "ckpts" / "model.pt")
    code = main(["search", "--config", str(config), "--out", str(tmp_path / "run")])
    line = _one_error_line(capsys, code, "does not exist; make it with: prunegym train")
    expected = (
        f"--model {pkg}.nets:tiny --dataset {pkg}.data:blobs --model-kwarg classes=3 "
        f"--model-kwarg width=6 --dataset-option n=240 --out {tmp_path / 'ckpts'}"
    )
    assert line.endswith(expected)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--model-kwarg", "width"], "argument --model-kwarg: expected KEY=VALUE, got 'width'"),
        (["--dataset-option", "mean=[0.5"], "the value of 'mean=[0.5' is not valid YAML"),
        (["--dataset-option", "channels=1", "--channels", "3"],
         "--dataset-option channels=1 contradicts --channels"),
    ],
)  # fmt: skip
def test_train_keyword_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    out = tmp_path / "out"
    code = main(["train", "--model", "smallcnn", "--out", str(out), *argv])
    _one_error_line(capsys, code, fragment)
    assert not out.exists()


@pytest.mark.parametrize("names", ["model", "dataset"])
def test_code_named_by_a_checkpoint_runs_only_when_the_config_names_it(
    pkg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], names: str
) -> None:
    from prunegym.experiments.checkpoint import save_checkpoint
    from prunegym.experiments.data import build_data
    from prunegym.experiments.models import build_model

    marker = tmp_path / "ran"
    evil = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\ndef build(**kw): pass\n"
    (tmp_path / "src" / pkg / "evil.py").write_text(evil)
    data = build_data("digits", reward_val_size=100, seed=0)
    described = data.describe()
    if names == "dataset":
        described = {**described, "name": f"{pkg}.evil:build"}
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, build_model("smallcnn", 1, 10),
                    model_name=f"{pkg}.evil:build" if names == "model" else "smallcnn",
                    in_channels=1, num_classes=10, dataset=described)  # fmt: skip
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({"workload": {"checkpoint": str(ckpt)},
                                      "search": {"agent": "random", "episodes": 1},
                                      "run": RUN}))  # fmt: skip
    run = tmp_path / "run"
    code = main(["search", "--config", str(config), "--out", str(run)])
    _one_error_line(capsys, code, "names code to run", f"{pkg}.evil:build",
                    f"workload.{names}: {pkg}.evil:build")  # fmt: skip
    assert not marker.exists() and not run.exists()  # nothing imported, nothing written
