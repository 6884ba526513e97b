"""Every torchvision classification model prunes: a uniform 30 % policy applies with
masked == physical and exact MACs. A fast subset runs in `make test`; the rest is
marked slow; the largest variants (minutes and gigabytes each) are left out."""

from __future__ import annotations

import pytest
import torch
import torchvision
from pruning_checks import prunes_exactly, tv

from prunegym.pruners import LayerTable

FAST = {"squeezenet1_1": 64, "shufflenet_v2_x0_5": 64, "mobilenet_v3_small": 64, "resnet18": 32}
TOO_LARGE = {"vit_h_14", "regnet_y_128gf", "vit_l_16", "vit_l_32", "convnext_large",
             "regnet_y_32gf", "regnet_x_32gf"}  # fmt: skip


def side(name: str) -> int:
    if name.startswith(("vit_", "swin_", "maxvit")):
        return 224  # patch and window sizes need the full resolution
    return 96 if name == "inception_v3" else FAST.get(name, 64)


MODELS = [
    pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
    for name in sorted(torchvision.models.list_models(module=torchvision.models))
    if name not in TOO_LARGE
]


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_model_prunes_exactly(name: str) -> None:
    model = tv(name)
    table = LayerTable.from_model(model, torch.randn(1, 3, side(name), side(name)))
    assert len(table) > 0
    prunes_exactly(model, table, 0.3, side(name))
