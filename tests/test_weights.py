"""load_weights: a plain state_dict, a training checkpoint or ours, read with weights_only=True."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from prunegym.experiments.checkpoint import (
    load_checkpoint,
    load_weights,
    read_weights,
    save_checkpoint,
)
from prunegym.experiments.models import build_model


def _net(width: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, width, 3), nn.BatchNorm2d(width), nn.ReLU(), nn.Flatten(),
        nn.Linear(width * 16, 3),
    ).eval()  # fmt: skip


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrapping", ["state_dict", "training", "model_state_dict", "prunegym"])
def test_every_weights_format_loads(tmp_path: Path, wrapping: str) -> None:
    trained = _net(seed=1)
    path = tmp_path / "w.pt"
    state = trained.state_dict()
    if wrapping == "state_dict":
        torch.save(state, path)
    elif wrapping == "training":
        opt = torch.optim.SGD(trained.parameters(), lr=0.1, momentum=0.9)
        torch.save({"epoch": 7, "state_dict": state, "optimizer": opt.state_dict()}, path)
    elif wrapping == "model_state_dict":
        torch.save({"model_state_dict": state, "best_acc": 0.9}, path)
    else:
        save_checkpoint(path, trained, model_name="custom")
    fresh = _net(seed=2)
    assert not _same(fresh, trained)
    assert load_weights(fresh, path) is fresh
    assert _same(fresh, trained)
    kind = read_weights(path).kind
    assert kind == {"model_state_dict": "training"}.get(wrapping, wrapping)


def test_mismatching_weights_name_the_first_key_and_leave_the_model_alone(tmp_path: Path) -> None:
    torch.save(_net(width=8).state_dict(), tmp_path / "wide.pt")
    model = _net(width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"'0\.weight' has shape \(8, 1, 3, 3\), the model's is "):
        load_weights(model, tmp_path / "wide.pt")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    state = _net().state_dict()
    del state["1.running_var"]
    torch.save(state, tmp_path / "short.pt")
    with pytest.raises(ValueError, match=r"no weights for '1\.running_var'"):
        load_weights(model, tmp_path / "short.pt")
    state = {**_net().state_dict(), "head.bias": torch.zeros(3)}
    torch.save(state, tmp_path / "long.pt")
    with pytest.raises(ValueError, match=r"unexpected key 'head\.bias'"):
        load_weights(model, tmp_path / "long.pt")
    torch.save({f"module.{k}": v for k, v in _net().state_dict().items()}, tmp_path / "dp.pt")
    with pytest.raises(ValueError, match="DataParallel"):
        load_weights(model, tmp_path / "dp.pt")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_files_without_weights_are_one_line_errors(tmp_path: Path) -> None:
    model = _net()
    with pytest.raises(FileNotFoundError, match=r"weights file .*absent\.pt does not exist"):
        load_weights(model, tmp_path / "absent.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(ValueError, match=r"holds no weights: .* got a dict with keys 'epoch'"):
        load_weights(model, tmp_path / "meta.pt")
    torch.save(model, tmp_path / "pickled_module.pt")  # a whole module: code, not weights
    with pytest.raises(ValueError, match="is not a readable weights file") as err:
        load_weights(model, tmp_path / "pickled_module.pt")
    message = str(err.value)
    assert "pickled torch.nn.modules.container.Sequential, not plain weights" in message
    assert "\n" not in message and "weights_only=False" not in message
    assert "False" not in message  # never advise turning the safe loader off
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="is not a readable weights file"):
        load_weights(model, tmp_path / "junk.pt")


def test_checkpoint_records_model_kwargs_and_names_the_mismatching_key(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mobilenetv2", 1, 4, width=0.5)
    path = save_checkpoint(
        tmp_path / "m.pt", model, model_name="mobilenetv2", in_channels=1, num_classes=4,
        model_kwargs={"width": 0.5},
    )  # fmt: skip
    ckpt = load_checkpoint(path)
    assert ckpt.model_spec["kwargs"] == {"width": 0.5}
    assert _same(ckpt.build_model(), model.eval())
    wrong = save_checkpoint(tmp_path / "w.pt", model, model_name="mobilenetv2", in_channels=1,
                            num_classes=4)  # fmt: skip
    with pytest.raises(ValueError, match=r"weights do not fit mobilenetv2: 'features\.0\.weight'"):
        load_checkpoint(wrong).build_model()
