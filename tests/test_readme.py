"""The README stays inside the repository and says what users must know before loading
files: every document or config it names exists here (or is one prunegym writes), and
it warns that agent files and run directories must come from a trusted source."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
WRITTEN_BY_PRUNEGYM = {"report.md", "config.yaml"}  # files of a run directory


def test_every_named_document_or_config_is_in_the_repository() -> None:
    named = set(re.findall(r"[\w./-]+\.(?:md|yaml|toml)\b", README)) - WRITTEN_BY_PRUNEGYM
    assert named, "the README names no files at all?"
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert missing == []


def test_it_warns_that_agent_files_and_run_directories_must_be_trusted() -> None:
    text = " ".join(README.split())
    assert "Agent files and run directories must come from a trusted source." in text
    assert "cloudpickle" in text


def test_fashion_mnist_training_time_is_said_next_to_the_command() -> None:
    lines = README.splitlines()
    (i,) = [i for i, line in enumerate(lines) if "prunegym train  --model resnet20" in line]
    assert "30 min to hours on 2 CPU cores" in lines[i + 1]
