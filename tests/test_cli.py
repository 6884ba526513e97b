"""The command line's own behaviour: --debug / PRUNEGYM_DEBUG show the traceback behind
the one-line error, and every command's --help shows its defaults and, where it loads
pickles, that they must come from a trusted source."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunegym.experiments.cli import COMMANDS, main

EXPECTED_DEFAULTS = {
    "train": ["--epochs EPOCHS", "(default: 10)", "(default: digits)", "(default: 128)"],
    "search": [],
    "export": ["(default: 5)", "(default: 64)", "(default: auto)"],
    "run": ["(default: 5)", "(default: 64)"],
    "report": [],
    "demo": ["(default: 100)", "(default: 25)", "(default: runs/demo)"],
    "bench": [],
    "transfer": [
        "shot only) (default: 0)",
        "(default: agent)",
    ],
}


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    assert main([command, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_defaults(capsys: pytest.CaptureFixture[str], command: str) -> None:
    text = _help(capsys, command)
    for fragment in EXPECTED_DEFAULTS[command]:
        assert fragment in text, fragment
    assert "(default: None)" not in text and "(default: False)" not in text


@pytest.mark.parametrize("command", ["search", "run", "export", "transfer"])
def test_help_says_agent_files_and_run_dirs_must_be_trusted(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = _help(capsys, command)
    assert "agent.zip" in text and "use only those from a trusted source" in text


@pytest.mark.parametrize("how", ["flag", "flag-after-command", "env"])
def test_debug_shows_the_traceback_behind_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    argv = ["search", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "r")]
    monkeypatch.delenv("PRUNEGYM_DEBUG", raising=False)
    assert main(argv) == 2
    plain = capsys.readouterr().err
    assert plain.count("\n") == 1 and "Traceback" not in plain
    if how == "flag":
        argv = ["--debug", *argv]
    elif how == "flag-after-command":
        argv = [*argv, "--debug"]
    else:
        monkeypatch.setenv("PRUNEGYM_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "ConfigError" in err
    assert err.strip().splitlines()[-1] == plain.strip()


def test_a_warning_is_one_line_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "digits.yaml"
    sets = ["run.progress=false", "run.tensorboard=false", "workload.train_epochs=1",
            "search.episodes=2", "search.options.warmup_episodes=5"]  # fmt: skip
    argv = ["search", "--config", str(config), "--out", str(tmp_path / "run")]
    assert main([*argv, *[a for s in sets for a in ("--set", s)]]) == 0
    err = capsys.readouterr().err
    line = "prunegym: warning: ddpg: warmup_episodes (5) >= episodes (2): every episode"
    assert line in err and ".py:" not in err, err
