"""Models and datasets named ``package.module:function``: the user's own code, imported."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from prunegym.experiments import cli
from prunegym.experiments.config import ConfigError
from prunegym.experiments.data import SPLITS, DataSplits, build_data, build_data_like
from prunegym.experiments.models import build_model, check_model_name

MODELS_PY = """
import torch
from torch import nn

def net(in_channels=1, num_classes=3, width=8):
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )

def not_a_model():
    return "a string"

NOT_CALLABLE = 3
"""

DATA_PY = """
import torch
from torch.utils.data import TensorDataset
from prunegym.experiments.data import DataSplits

def _tensors(n, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=gen), torch.arange(n) % 3

def datasets(n=120, data_dir=None):
    return TensorDataset(*_tensors(n, 0)), None, TensorDataset(*_tensors(30, 1))

def splits():
    return DataSplits.from_tensors(_tensors(80, 0), test=_tensors(20, 1), reward_val_size=8)

def wrong():
    return 42

def two():
    return datasets()[:2]

def tensors_not_datasets():
    return _tensors(40, 0), None, None
"""


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package of the test's own on sys.path (a fresh name per test)."""
    name = "byo_" + "".join(c if c.isalnum() else "_" for c in tmp_path.name)
    root = tmp_path / "src" / name
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "models.py").write_text(textwrap.dedent(MODELS_PY))
    (root / "data.py").write_text(textwrap.dedent(DATA_PY))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    yield name
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


# ----------------------------------------------------------------------------- models


def test_build_model_by_import_path_passes_model_kwargs(pkg: str) -> None:
    model = build_model(f"{pkg}.models:net", width=4)
    assert isinstance(model, nn.Module) and model[0].out_channels == 4
    assert model[0].in_channels == 1 and model[-1].out_features == 3  # the function's defaults
    given = build_model(f"{pkg}.models:net", 3, 7)  # passed on when given
    assert (given[0].in_channels, given[-1].out_features) == (3, 7)
    check_model_name(f"{pkg}.models:net")


@pytest.mark.parametrize(
    ("suffix", "kwargs", "message"),
    [
        (".models:net", {"depth": 3}, "unexpected keyword argument 'depth'"),
        (".models:not_a_model", {}, "returned 'str', not a torch.nn.Module"),
        (".models:NOT_CALLABLE", {}, "is 'int', not a function"),
        (".models:absent", {}, "has no attribute 'absent'"),
        (".nowhere:net", {}, "no module named"),
        (".models:", {}, "not an import path package.module:function"),
    ],
)
def test_model_import_path_mistakes_are_one_line_config_errors(
    pkg: str, suffix: str, kwargs: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        build_model(pkg + suffix, **kwargs)
    assert "\n" not in str(err.value)


def test_zoo_models_take_their_builder_keywords() -> None:
    assert build_model("mobilenetv2", 1, 4, width=0.5).features[0].out_channels == 16
    with pytest.raises(ValueError, match="unexpected keyword argument 'width'"):
        build_model("resnet20", width=0.5)


# ----------------------------------------------------------------------------- datasets


def test_dataset_function_returning_datasets_gets_a_carved_reward_split(pkg: str) -> None:
    path = f"{pkg}.data:datasets"
    a = build_data(path, seed=3, n=100)
    b = build_data(path, seed=3, n=100)
    assert a.name == path and [len(a.split(s)) for s in SPLITS] == [90, 10, 30]
    for s in SPLITS:
        assert a.indices[s].tolist() == b.indices[s].tolist()
    idx = {s: set(a.indices[s].tolist()) for s in SPLITS}
    assert not idx["reward_val"] & idx["test"] and not idx["reward_val"] & idx["train"]
    again = build_data_like(a.describe())  # the function is called again with its options
    assert again.indices["reward_val"].tolist() == a.indices["reward_val"].tolist()
    assert build_data(path, data_dir="/somewhere").options["data_dir"] == "/somewhere"


def test_dataset_function_returning_splits_keeps_them(pkg: str) -> None:
    data = build_data(f"{pkg}.data:splits")
    assert isinstance(data, DataSplits) and data.reward_val_size == 8
    assert build_data_like(data.describe()).indices["train"].tolist() == (
        data.indices["train"].tolist()
    )
    with pytest.raises(ConfigError, match="8 reward_val samples, but reward_val_size is 5"):
        build_data(f"{pkg}.data:splits", reward_val_size=5)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("wrong", "returned 'int'; expected a DataSplits or a tuple"),
        ("two", "returned a tuple of 2; expected"),
        ("tensors_not_datasets", "train must be a map-style torch Dataset"),
        ("splits_typo", "has no attribute 'splits_typo'"),
    ],
)
def test_dataset_function_returning_wrong_types_is_one_line(
    pkg: str, function: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        build_data(f"{pkg}.data:{function}")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unexpected keyword argument 'colour'"):
        build_data(f"{pkg}.data:datasets", colour="red")


# ----------------------------------------------------------------------------- command line


def test_cli_train_with_own_model_and_data(
    pkg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prunegym.experiments.checkpoint import load_checkpoint

    bad = ["train", "--model", f"{pkg}.models:net", "--dataset", f"{pkg}.data:wrong"]
    assert cli.main([*bad, "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "returned 'int'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()  # nothing half-written

    out = tmp_path / "run"
    argv = ["train", "--model", f"{pkg}.models:net", "--dataset", f"{pkg}.data:datasets"]
    assert cli.main([*argv, "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    ckpt = load_checkpoint(out / "model.pt")
    model = ckpt.build_model(trusted_code=(f"{pkg}.models:net",))  # the caller names it
    assert model[0].in_channels == 1 and model[-1].out_features == 3
    x = torch.randn(2, 1, 6, 6)
    with torch.inference_mode():
        assert model(x).shape == (2, 3)


def test_workload_config_carries_model_kwargs_and_dataset_options(pkg: str) -> None:
    from prunegym.experiments.config import load_config

    cfg = load_config(
        overrides=[
            f"workload.model={pkg}.models:net",
            "workload.model_kwargs={width: 5}",
            f"workload.dataset={pkg}.data:datasets",
            "workload.dataset_options={n: 60}",
        ]
    )
    w = cfg.workload
    data = build_data(w.dataset, w.reward_val_size, w.split_seed, w.data_dir, **w.dataset_options)
    model = build_model(w.model, **w.model_kwargs)
    assert len(data.train) + len(data.reward_val) == 60 and model[0].out_channels == 5
    with pytest.raises(ConfigError, match=r"workload\.model_kwargs must be a mapping"):
        load_config(overrides=["workload.model_kwargs=3"])
