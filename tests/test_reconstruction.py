"""AMC reconstruction: refitted layers reproduce the dense outputs better than pruning alone."""

from __future__ import annotations

import torch
from conftest import make_model

from prunegym.pruners import ChannelPruner, LayerTable, PruningPolicy, Reconstructor


def _feature_error(model, reference, batch) -> float:
    with torch.no_grad():
        return float((model(batch) - reference).pow(2).mean())


def test_reconstruction_reduces_output_error_and_matches_physical(example_input) -> None:
    torch.manual_seed(0)
    model = make_model("vgg11")
    table = LayerTable.from_model(model, example_input)
    calib = [torch.randn(16, 3, 32, 32) for _ in range(4)]
    recon = Reconstructor(model, table, calib, samples_per_image=20)
    assert "features.4" in recon.layer_names  # consumer of the first unit's channels
    policy = PruningPolicy.uniform(table, 0.5)
    batch = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        dense_out = model(batch)
    plain = ChannelPruner(model, table)
    refit = ChannelPruner(model, table, reconstruction=recon)
    with plain.masked(policy):
        err_plain = _feature_error(model, dense_out, batch)
    with refit.masked(policy):
        err_refit = _feature_error(model, dense_out, batch)
        with torch.no_grad():
            masked_out = model(batch)
    assert err_refit < 0.8 * err_plain
    small = refit.apply(policy).eval()
    with torch.no_grad():
        assert (small(batch) - masked_out).abs().max() < 1e-4


def test_refit_solves_the_least_squares_problem(example_input) -> None:
    model = make_model("vgg11")
    table = LayerTable.from_model(model, example_input)
    recon = Reconstructor(model, table, [torch.randn(16, 3, 32, 32)], samples_per_image=64)
    w = recon.refit("features.4", removed_in=[], full=True)
    # nothing removed: the normal equations (1024 samples > 576 unknowns) give back W
    assert torch.allclose(w, model.features[4].weight, atol=1e-3)
    assert recon.refit("features.4", removed_in=list(range(32))).shape == (128, 32, 3, 3)
