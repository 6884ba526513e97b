"""The committed reference checkpoints are the files benchmarks/checkpoints/README.md
describes (same sha256), and every config that names one names a file that exists."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "benchmarks" / "checkpoints"


def _rows() -> dict[str, str]:
    text = (CHECKPOINTS / "README.md").read_text()
    return dict(re.findall(r"^\| `([^`]+\.pt)` \|.*\| `([0-9a-f]{64})` \|$", text, re.M))


def test_every_committed_checkpoint_matches_its_recorded_sha256() -> None:
    rows = _rows()
    assert set(rows) == {p.name for p in CHECKPOINTS.glob("*.pt")}
    for name, digest in rows.items():
        assert hashlib.sha256((CHECKPOINTS / name).read_bytes()).hexdigest() == digest, name


def test_every_config_names_a_committed_checkpoint_that_exists() -> None:
    named = set()
    for config in (ROOT / "configs").glob("*.yaml"):
        named |= set(re.findall(r"benchmarks/checkpoints/([\w.-]+\.pt)", config.read_text()))
    assert named and named <= set(_rows())
