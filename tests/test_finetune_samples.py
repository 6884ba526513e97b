"""A fine-tune on a seeded subset of the train split: ``DataSplits.train_subset``,
``fine_tune(train_samples=...)``, ``prunegym export --train-samples``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunegym.experiments.cli import main
from prunegym.experiments.data import DataSplits
from prunegym.experiments.training import fine_tune


def _splits(n_train: int = 60) -> DataSplits:
    """Train sample ``i`` is the constant image ``i`` (so a model can see which it read)."""

    def part(start: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2)
        return x.contiguous(), torch.arange(n) % 3

    return DataSplits.from_tensors(part(0, n_train), part(1000, 10), part(2000, 10))


def test_train_subset_is_seeded_sized_and_leaves_the_other_splits():
    data = _splits()
    a, again, other = data.train_subset(20, 0), data.train_subset(20, 0), data.train_subset(20, 1)
    assert len(a.train) == 20 and len(a.plain("train")) == 20
    np.testing.assert_array_equal(a.train.indices, again.train.indices)  # deterministic
    assert not np.array_equal(a.train.indices, other.train.indices)  # another seed, another draw
    assert set(a.train.indices) <= set(data.train.indices)
    assert len(set(a.train.indices)) == 20  # no sample twice
    np.testing.assert_array_equal(a.plain("train").indices, a.train.indices)
    for split in ("reward_val", "test"):
        np.testing.assert_array_equal(a.split(split).indices, data.split(split).indices)
    assert len(data.train) == 60  # the original splits are not changed
    np.testing.assert_array_equal(data.train_subset(60, 3).train.indices, data.train.indices)


@pytest.mark.parametrize("n", [0, -1, 61, 2.5, True])
def test_train_subset_refuses_a_bad_size(n):
    with pytest.raises(ValueError, match=r"train_samples must be an integer in \[1, 60\]"):
        _splits().train_subset(n)


def test_fine_tune_reads_only_the_seeded_subset():
    data = _splits()
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    seen: list[float] = []
    model.register_forward_hook(lambda m, inputs, out: seen.extend(inputs[0][:, 0, 0, 0].tolist()))
    result = fine_tune(model, data, 2, batch_size=8, seed=5, train_samples=12, progress=False)
    expected = data.train_subset(12, 5).train.indices
    # two epochs over exactly the subset: every subset sample twice, nothing else
    assert sorted(seen) == sorted([float(i) for i in expected] * 2)
    assert result.config["train_samples"] == 12
    with pytest.raises(ValueError, match="train_samples needs data splits"):
        fine_tune(model, [(torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.int64))], 1,
                  train_samples=2, progress=False)  # fmt: skip


def test_export_cli_refuses_a_bad_train_samples(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--train-samples", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--train-samples must be >= 1" in err[0], err
