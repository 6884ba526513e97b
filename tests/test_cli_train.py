"""``prunegym train`` end to end, its one-line errors, and the checkpoints it writes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prunegym.experiments import cli
from prunegym.experiments.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from prunegym.experiments.data import build_data_like
from prunegym.experiments.models import build_model
from prunegym.experiments.training import EpochStats, evaluate
from prunegym.utils.files import atomic_write_bytes, write_json


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _assert_one_line_error(status: int, out: str, err: str, *fragments: str) -> None:
    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("prunegym: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# ----------------------------------------------------------------------------- success


def test_train_writes_checkpoint_metrics_and_one_summary_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "run" / "nested"
    argv = ["train", "--model", "smallcnn", "--dataset", "digits", "--epochs", "2"]
    argv += ["--out", str(out_dir), "--lr", "0.05", "--batch-size", "64", "--no-progress"]
    argv += ["--device", "cpu"]  # the re-evaluation below runs on the CPU too
    status, out, err = _run(argv, capsys)
    assert status == 0, err
    # --no-progress: no bars, only the estimate after the first epoch
    assert re.fullmatch(r"prunegym: epoch 1/2 took \d+\.\d s; about \d+\.\d s to go\n", err), err
    assert len(out.splitlines()) == 1
    assert out.startswith("smallcnn on digits: 2 epochs in ") and "test top-1" in out
    assert sorted(p.name for p in out_dir.iterdir()) == ["metrics.json", "model.pt"]

    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["model"] == {"name": "smallcnn", "in_channels": 1, "num_classes": 10}
    assert metrics["epochs"] == 2 and len(metrics["train"]["history"]) == 2
    assert metrics["dataset"]["name"] == "digits" and metrics["dataset"]["sizes"]["test"] == 360
    assert 0.5 < metrics["test"]["top1"] <= 1.0
    assert f"{metrics['test']['top1']:.2%}" in out
    assert metrics["command"] == ["prunegym", *argv]

    ckpt = load_checkpoint(out_dir / "model.pt")
    meta = ckpt.metadata
    assert meta["model"] == metrics["model"]
    assert meta["dataset"] == metrics["dataset"]
    assert meta["metrics"]["test"] == metrics["test"]
    assert meta["prunegym_version"] and meta["extra"]["train_config"]["lr"] == 0.05
    # The checkpoint reproduces the reported test accuracy on the rebuilt split.
    model = ckpt.build_model()
    data = build_data_like(meta["dataset"])
    assert evaluate(model, data.loader("test", 256)).top1 == pytest.approx(metrics["test"]["top1"])

    # A second run into the same directory refuses to clobber it without --force.
    status, out, err = _run(argv, capsys)
    _assert_one_line_error(status, out, err, "already holds model.pt", "--force")
    status, _, err = _run([*argv, "--force", "--epochs", "1"], capsys)
    assert status == 0, err
    assert json.loads((out_dir / "metrics.json").read_text())["epochs"] == 1


def test_console_entry_point_runs_as_a_module(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "prunegym", "train", "--model", "nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("prunegym: error: unknown model")
    help_proc = subprocess.run(
        [sys.executable, "-m", "prunegym", "train", "--help"], capture_output=True, text=True
    )
    assert help_proc.returncode == 0 and "--reward-val-size" in help_proc.stdout


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--model", "resnet21"], ["unknown model 'resnet21'", "resnet20"]),
        (["--model", "tv:nope"], ["unknown torchvision model 'nope'"]),
        (["--model", "smallcnn", "--dataset", "mnist"], ["unknown dataset 'mnist'", "digits"]),
        (["--model", "smallcnn", "--epochs", "0"], ["--epochs", "must be >= 1"]),
        (["--model", "smallcnn", "--epochs", "-3"], ["--epochs"]),
        (["--model", "smallcnn", "--epochs", "two"], ["--epochs", "'two'"]),
        (["--model", "smallcnn", "--optimizer", "adam"], ["invalid choice: 'adam'"]),
        (["--model", "smallcnn", "--lr", "-1"], ["--lr must be > 0"]),
        (["--model", "smallcnn", "--device", "cuda:7"], ["cuda:7"]),
        (["--model", "smallcnn", "--reward-val-size", "5000"], ["reward_val_size must be in"]),
        (["--model", "smallcnn", "--no-augment"], ["does not take option"]),
        (["--model", "smallcnn", "--bogus"], ["unrecognized arguments: --bogus"]),
        ([], ["--model"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragments: list[str]
) -> None:
    out_dir = tmp_path / "out"
    status, out, err = _run(["train", "--out", str(out_dir), *extra], capsys)
    _assert_one_line_error(status, out, err, *fragments)
    assert not out_dir.exists()  # nothing written, not even an empty directory


def test_missing_dataset_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--model", "resnet20", "--dataset", "fashion-mnist"]
    argv += ["--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]
    status, out, err = _run(argv, capsys)
    _assert_one_line_error(status, out, err, "Fashion-MNIST not found", str(tmp_path / "nope"))
    assert "apt-get install dataset-fashion-mnist" in err


def test_corrupt_dataset_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "fm"
    data_dir.mkdir()
    for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        kind = "idx3" if "images" in name else "idx1"
        (data_dir / f"{name}-{kind}-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    argv = ["train", "--model", "smallcnn", "--dataset", "fashion-mnist"]
    argv += ["--data-dir", str(data_dir), "--out", str(tmp_path / "out")]
    status, out, err = _run(argv, capsys)
    _assert_one_line_error(status, out, err, "truncated IDX header")


def test_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    base = ["train", "--model", "smallcnn", "--epochs", "1", "--no-progress"]
    status, out, err = _run([*base, "--out", str(blocker / "run")], capsys)
    _assert_one_line_error(status, out, err, str(blocker))
    status, out, err = _run([*base, "--out", str(blocker)], capsys)
    _assert_one_line_error(status, out, err, "not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_permission_denied_output_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    base = ["train", "--model", "smallcnn", "--epochs", "1", "--no-progress"]
    status, out, err = _run([*base, "--out", str(locked / "run")], capsys)
    _assert_one_line_error(status, out, err, "Permission denied")


def test_no_command_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run([], capsys)
    _assert_one_line_error(status, out, err, "a command is required: train")
    assert cli.main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    status, out, err = _run(["nosuch"], capsys)
    _assert_one_line_error(status, out, err, "invalid choice: 'nosuch'")


def test_every_registered_command_has_help() -> None:
    parser = cli.build_parser()
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_with_weights_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("resnet20", in_channels=1, num_classes=4)
    path = save_checkpoint(
        tmp_path / "m.pt", model, model_name="resnet20", in_channels=1, num_classes=4,
        dataset={"name": "synthetic"}, metrics={"top1": 0.5},
    )  # fmt: skip
    raw = torch.load(path, weights_only=True)  # plain data only
    assert raw["format"] == CHECKPOINT_FORMAT
    ckpt = load_checkpoint(path)
    assert ckpt.metadata["metrics"] == {"top1": 0.5}
    assert ckpt.model_spec == {"name": "resnet20", "in_channels": 1, "num_classes": 4}
    rebuilt = ckpt.build_model()
    x = torch.randn(2, 1, 16, 16)
    with torch.inference_mode():
        assert torch.equal(rebuilt(x), model.eval()(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind


def test_checkpoint_errors(tmp_path: Path) -> None:
    model = build_model("smallcnn", in_channels=1)
    with pytest.raises(ValueError, match="plain JSON"):
        save_checkpoint(
            tmp_path / "m.pt", model, model_name="smallcnn", in_channels=1, num_classes=10,
            metrics={"t": torch.zeros(1)},
        )  # fmt: skip
    assert not list(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable prunegym checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a prunegym checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    path = save_checkpoint(
        tmp_path / "m.pt", model, model_name="resnet20", in_channels=1, num_classes=10
    )
    with pytest.raises(ValueError, match="weights do not fit resnet20"):
        load_checkpoint(path).build_model()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(8.46, "8.5 s"), (150, "150 s"), (14 * 150, "35 min"), (9000, "2.5 h")],
)
def test_durations_read_as_a_person_would_say_them(seconds: float, text: str) -> None:
    from prunegym.experiments.train_command import duration, remaining_time_note

    assert duration(seconds) == text
    lines: list[str] = []
    note = remaining_time_note(15, lines.append)
    for epoch in (1, 2):
        note(EpochStats(epoch=epoch, loss=1.0, accuracy=0.5, lr=0.1, seconds=150.0, ce_loss=1.0))
    assert lines == ["epoch 1/15 took 150 s; about 35 min to go"]  # once, after epoch 1


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")

    def broken(fh: object) -> None:
        fh.write(b"half")  # type: ignore[attr-defined]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write_bytes(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_strict_json_rejects_nan_before_touching_the_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(ValueError, match="Out of range float values"):
        write_json(target, {"loss": float("nan")}, allow_nan=False)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    write_json(target, {"loss": float("nan")})  # the default writes NaN, as json does
    assert target.read_text() == '{\n  "loss": NaN\n}\n'
