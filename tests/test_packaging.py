"""pyproject.toml: the SPDX license string, ONNX as the ``prunegym[onnx]`` extra (which
dev installs), and a torch floor that has the ONNX exporter arguments export_onnx uses."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
PROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())[
    "project"
]


def _floor(requirement: str) -> tuple[int, ...]:
    return tuple(int(x) for x in requirement.split(">=")[1].split(",")[0].split("."))


def test_license_is_an_spdx_string() -> None:
    assert PROJECT["license"] == "MIT"


def test_onnx_is_an_extra_that_dev_installs() -> None:
    extras = PROJECT["optional-dependencies"]
    assert sorted(r.split(">=")[0] for r in extras["onnx"]) == ["onnx", "onnxruntime", "onnxscript"]
    own = [r for r in extras["dev"] if r.startswith("prunegym[")]
    assert any("onnx" in r.partition("[")[2].rstrip("]").split(",") for r in own)
    assert not [r for r in PROJECT["dependencies"] if r.startswith("onnx")]


def test_the_torch_floor_has_the_onnx_exporter_arguments_export_onnx_passes() -> None:
    (torch_req,) = [r for r in PROJECT["dependencies"] if r.startswith("torch>=")]
    assert _floor(torch_req) >= (2, 6)  # dynamo=True with dynamic_shapes and external_data
    params = inspect.signature(torch.onnx.export).parameters
    assert {"dynamo", "dynamic_shapes", "external_data"} <= set(params)
