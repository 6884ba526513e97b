"""One version string: prunegym/__init__.py, read by the build and by checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import prunegym
from prunegym.experiments.checkpoint import load_checkpoint, prunegym_version, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_reads_the_version_from_the_package() -> None:
    tomllib = pytest.importorskip("tomllib")
    from setuptools.config.expand import read_attr

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]  # not written a second time
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert read_attr(attr, root_dir=ROOT) == prunegym.__version__  # what a build would get


def test_checkpoints_record_the_package_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prunegym, "__version__", "9.8.7")
    assert prunegym_version() == "9.8.7"
    path = save_checkpoint(tmp_path / "m.pt", torch.nn.Linear(2, 2), model_name="custom")
    assert load_checkpoint(path).metadata["prunegym_version"] == "9.8.7"
