"""Bring your own data: DataSplits over the caller's tensors and datasets."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from prunegym.experiments.data import SPLITS, DataSplits, build_data_like


def _tensors(n: int, seed: int = 0, shape: tuple[int, ...] = (1, 6, 6), classes: int = 3):
    """Inputs whose first value is the sample's row number, so every sample is traceable."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape), generator=gen)
    x.view(n, -1)[:, 0] = torch.arange(n, dtype=torch.float32)
    return x, torch.arange(n) % classes


def _rows(x: torch.Tensor) -> list[int]:
    return x.reshape(len(x), -1)[:, 0].round().long().tolist()


def _assert_disjoint(data: DataSplits) -> None:
    idx = {s: set(data.indices[s].tolist()) for s in SPLITS}
    assert not idx["train"] & idx["reward_val"]
    assert not idx["train"] & idx["test"]
    assert not idx["reward_val"] & idx["test"]


# ----------------------------------------------------------------------------- from_tensors


def test_from_tensors_carves_a_disjoint_deterministic_reward_split() -> None:
    x, y = _tensors(200)
    test = _tensors(30, seed=1)
    a = DataSplits.from_tensors((x, y), test=test, seed=4)
    b = DataSplits.from_tensors(train=(x, y), test=test, seed=4)
    c = DataSplits.from_tensors((x, y), test=test, seed=5)
    assert [len(a.split(s)) for s in SPLITS] == [180, 20, 30]  # 10% of train by default
    _assert_disjoint(a)
    for s in SPLITS:
        np.testing.assert_array_equal(a.indices[s], b.indices[s])
    assert not np.array_equal(a.indices["reward_val"], c.indices["reward_val"])
    # The reward and train samples are rows of the train tensors, exactly as given.
    reward_x, reward_y = a.tensors("reward_val")
    rows = _rows(reward_x)
    assert rows == a.indices["reward_val"].tolist()
    assert torch.equal(reward_x, x[rows]) and torch.equal(reward_y, y[rows])
    assert sorted(rows + _rows(a.tensors("train")[0])) == list(range(200))
    assert torch.equal(a.tensors("test")[0], test[0])  # the test split is the given one
    assert (a.num_classes, a.in_channels, a.image_size) == (3, 1, (6, 6))
    assert a.example_input.shape == (1, 1, 6, 6)
    assert a.train.pool.parts[0].images is x  # no copy of the caller's tensors


def test_from_tensors_with_given_reward_split_and_sizes() -> None:
    train, reward, test = _tensors(50), _tensors(12, seed=1), _tensors(8, seed=2)
    data = DataSplits.from_tensors(train, reward, test, num_classes=5)
    assert [len(data.split(s)) for s in SPLITS] == [50, 12, 8]
    assert data.reward_val_size == 12 and data.num_classes == 5
    assert torch.equal(data.tensors("reward_val")[0], reward[0])
    _assert_disjoint(data)
    assert len(DataSplits.from_tensors(train, reward_val_size=7).reward_val) == 7
    with pytest.raises(ValueError, match="reward_val_size=3 but the given reward_val has 12"):
        DataSplits.from_tensors(train, reward, reward_val_size=3)
    with pytest.raises(ValueError, match="reward_val and test are the same tensors"):
        DataSplits.from_tensors(train, reward, reward)
    with pytest.raises(ValueError, match="out of range for num_classes=2"):
        DataSplits.from_tensors(train, num_classes=2)


def test_from_tensors_without_test_has_no_test_samples() -> None:
    data = DataSplits.from_tensors(_tensors(40))
    assert len(data.test) == 0 and len(data.train) + len(data.reward_val) == 40
    with pytest.raises(ValueError, match="tensors has no test samples"):
        data.loader("test")
    with pytest.raises(ValueError, match="no test samples"):
        data.tensors("test")
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        build_data_like(data.describe())


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (torch.zeros(4, 3), "must be a pair of tensors"),
        ((torch.zeros(4, 3), torch.zeros(3, dtype=torch.long)), "4 inputs but 3 labels"),
        ((torch.zeros(4, 3), torch.zeros(4)), "1-D integer tensor, got torch.float32"),
        ((torch.zeros(4), torch.zeros(4, dtype=torch.long)), r"must be \(N, ...\)"),
        ((torch.zeros(4, 3), torch.tensor([0, 1, -1, 0])), "must be >= 0"),
        ((torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), "train is empty"),
    ],
)
def test_from_tensors_bad_input_is_one_line(train: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        DataSplits.from_tensors(train)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- from_datasets


class _Noisy(Dataset):
    """Augmenting view of tensors: adds noise to every input read."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i] + 0.01 * torch.randn_like(self.x[i]), int(self.y[i])


def test_from_datasets_reads_the_plain_view_for_reward_and_calibration() -> None:
    x, y = _tensors(100)
    tx, ty = _tensors(20, seed=3)
    data = DataSplits.from_datasets(
        _Noisy(x, y), test=TensorDataset(tx, ty), plain_train=TensorDataset(x, y), seed=1
    )
    assert [len(data.split(s)) for s in SPLITS] == [90, 10, 20]
    assert data.num_classes == 3  # scanned from the labels
    _assert_disjoint(data)
    reward_x, _ = data.tensors("reward_val")
    assert torch.equal(reward_x, x[data.indices["reward_val"].tolist()])  # un-augmented
    for xb, yb in data.calibration_batches(2, batch_size=8):
        assert torch.equal(xb, x[_rows(xb)]) and torch.equal(yb, y[_rows(xb)])
        assert set(_rows(xb)) <= set(data.indices["train"].tolist())
    torch.manual_seed(0)
    augmented, _ = next(iter(data.loader("train", batch_size=90)))
    assert not torch.equal(augmented, x[data.indices["train"].tolist()][: len(augmented)])
    assert data.train.augment and not data.plain("train").augment


def test_from_datasets_checks_types_and_sameness() -> None:
    ds = TensorDataset(*_tensors(30))
    reward = TensorDataset(*_tensors(5))
    with pytest.raises(ValueError, match="reward_val and test are the same dataset"):
        DataSplits.from_datasets(ds, reward_val=reward, test=reward)
    with pytest.raises(ValueError, match="train must be a map-style torch Dataset"):
        DataSplits.from_datasets(_tensors(30))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plain_train has 29 samples, train 30"):
        DataSplits.from_datasets(ds, plain_train=TensorDataset(*_tensors(29)))
    with pytest.raises(ValueError, match=r"train\[0\] input must be a tensor"):
        DataSplits.from_datasets([(np.zeros(3), 0), (np.zeros(3), 1)])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the env


def _tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3),
    ).eval()  # fmt: skip


def test_env_features_that_need_a_train_split_work_with_from_tensors() -> None:
    from prunegym.envs import PruningEnv

    data = DataSplits.from_tensors(_tensors(160), seed=2)
    options = {"bn_batches": 2, "bn_batch_size": 16}
    plain = PruningEnv(
        _tiny_cnn(), data, round_to=1, evaluator_options=options, reconstruction=False
    )
    refit = PruningEnv(_tiny_cnn(), data, round_to=1, evaluator_options=options)  # on by default
    for env in (plain, refit):
        assert env.evaluator.bn_recalibration  # calibration batches came from the train split
        served = {r for x, _ in env.evaluator.calibration for r in _rows(x)}
        assert served <= set(data.indices["train"].tolist())
    sparsities = [0.5] * plain.n_units
    _, info_plain = plain.play(sparsities)
    _, info_refit = refit.play(sparsities)
    assert info_plain["metrics"]["loss"] != info_refit["metrics"]["loss"]  # the refit ran


# ----------------------------------------------------------------------------- deep copies


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_deep_copies_and_env_spec_copy_no_data() -> None:
    import gymnasium as gym

    from prunegym.envs import CHANNEL_ENV_ID

    mib = 1 << 20
    x = torch.ones(51_200, 1, 32, 32)  # 200 MiB, every page touched
    y = torch.arange(51_200) % 3
    data = DataSplits.from_tensors((x, y), reward_val_size=64)
    before = _rss()
    probe = copy.deepcopy(x)  # the measurement sees a copy of the inputs ...
    assert _rss() - before > 150 * mib
    del probe
    before = _rss()
    copies = [copy.deepcopy(data), copy.deepcopy({"data": data})["data"]]
    splits = [copy.deepcopy(data.train), copy.deepcopy(data.plain("train"))]
    assert all(c is data for c in copies) and splits == [data.train, data.plain("train")]
    assert _rss() - before < 20 * mib  # ... and none of the splits
    env = gym.make(
        CHANNEL_ENV_ID, model=_tiny_cnn(), data=data, round_to=1,
        evaluator_options={"bn_batches": 1, "bn_batch_size": 16},
    )  # fmt: skip
    before = _rss()
    specs = [env.spec for _ in range(3)]  # each access deep-copies the make kwargs
    assert all(s is not None and s.kwargs["data"] is data for s in specs)
    assert _rss() - before < 20 * mib
    env.close()
