"""search and run check the whole setup before the expensive part: the output directory,
the model (build, trace, classes), the budget and the searcher's options fail with one
line and exit 2 before any training or evaluation (both patched here to raise)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunegym.experiments.checkpoint import save_checkpoint
from prunegym.experiments.cli import main
from prunegym.experiments.data import build_data
from prunegym.experiments.models import build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = ["search.episodes=2", "run.progress=false", "run.tensorboard=false"]


@pytest.fixture(autouse=True)
def no_training_or_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained or evaluated before the setup was checked")

    monkeypatch.setattr("prunegym.experiments.training.train", forbidden)
    monkeypatch.setattr("prunegym.envs.evaluator.Evaluator.evaluate", forbidden)
    monkeypatch.setattr("prunegym.envs.evaluator.Evaluator.evaluate_model", forbidden)


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("prunegym: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _sets(*items: str) -> list[str]:
    return [a for s in (*FAST, *items) for a in ("--set", s)]


@pytest.mark.parametrize("command", ["search", "run"])
@pytest.mark.parametrize(
    ("sets", "fragments"),
    [
        # ShuffleNet traces now (its branch convs prune); on 8x8 digits with round_to 8 its
        # rounding floor is above the budget, which must be found before any training
        (["workload.model=tv:shufflenet_v2_x0_5"], ["unreachable", "smallest reachable"]),
        (["workload.model=resnet21"], ["unknown model 'resnet21'"]),
        (["env.ratio=0.01"], ["unreachable"]),
        (["search.options.bogus=1"], ["agent 'ddpg' has no option 'bogus'"]),
        (["search.options.warmup_episodes=-1"], ["warmup_episodes must be >= 0"]),
        (["env.evaluator.subset_size=0"], ["subset_size must be an integer >= 1"]),
    ],
)
def test_a_bad_setup_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, sets: list, fragments: list
) -> None:
    out = tmp_path / "run"
    _fails(capsys, [command, "--config", CONFIGS / "digits.yaml", *_sets(*sets), "--out", out],
           *fragments)  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize("command", ["search", "run"])
def test_an_unusable_output_directory_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    base = [command, "--config", CONFIGS / "digits.yaml", *_sets()]
    _fails(capsys, [*base, "--out", blocker], "not a directory")
    _fails(capsys, [*base, "--out", blocker / "run"], "not a directory", str(blocker))
    assert blocker.read_text() == "x"


def test_a_model_with_the_wrong_number_of_classes_fails_before_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = build_data("digits")
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "model.pt", build_model("smallcnn", 1, 7),
                           model_name="smallcnn", in_channels=1, num_classes=7,
                           dataset=data.describe())  # fmt: skip
    out = tmp_path / "run"
    _fails(capsys, ["search", "--config", CONFIGS / "digits.yaml",
                    *_sets(f"workload.checkpoint={path}"), "--out", out],
           "the model outputs 7 classes but digits has 10")  # fmt: skip
    assert not out.exists()


def test_a_missing_checkpoint_says_which_command_makes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    line = _fails(
        capsys,
        [
            "search",
            "--config",
            CONFIGS / "resnet20-fmnist.yaml",
            *_sets("workload.checkpoint=runs/resnet20-fmnist/model.pt"),
        ],
    )
    assert line.endswith(
        "checkpoint runs/resnet20-fmnist/model.pt (workload.checkpoint) does not exist; make it "
        "with: prunegym train --model resnet20 --dataset fashion-mnist --out runs/resnet20-fmnist"
    )
    sets = _sets("workload.checkpoint=ckpts/dense.pt", "workload.split_seed=3")
    line = _fails(capsys, ["search", "--config", CONFIGS / "digits.yaml", "--out", "x", *sets])
    assert ("prunegym train --model smallcnn --dataset digits --split-seed 3 --out ckpts "
            "(it writes ckpts/model.pt: point workload.checkpoint there)") in line  # fmt: skip
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()
