"""Datasets by name: deterministic disjoint splits, the Fashion-MNIST search, loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from prunegym.experiments import data as data_mod
from prunegym.experiments.data import (
    SPLITS,
    build_data,
    build_data_like,
    dataset_names,
    default_reward_val_size,
)
from prunegym.experiments.idx import IDXError, write_idx


def _write_fake_fmnist(
    directory: Path, n_train: int = 50, n_test: int = 20, gz: bool = True, dotted: bool = False
) -> Path:
    """Tiny Fashion-MNIST-shaped IDX files (labels = index % 10, so they are checkable)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    suffix = ".gz" if gz else ""
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n) % 256  # a fingerprint per sample
        labels = (np.arange(n) % 10).astype(np.uint8)
        sep = "." if dotted else "-"
        write_idx(directory / f"{part}-images{sep}idx3-ubyte{suffix}", images)
        write_idx(directory / f"{part}-labels{sep}idx1-ubyte{suffix}", labels)
    return directory


@pytest.fixture
def no_system_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $PRUNEGYM_DATA and an empty 'system' directory."""
    monkeypatch.delenv("PRUNEGYM_DATA", raising=False)
    system = tmp_path / "system-empty"
    monkeypatch.setattr(data_mod.fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", system)
    return system


# ----------------------------------------------------------------------------- splits


def test_digits_splits_are_disjoint_and_cover_the_pool() -> None:
    data = build_data("digits")
    idx = {s: set(data.indices[s].tolist()) for s in SPLITS}
    assert len(idx["train"]) == len(data.train) and len(idx["test"]) == len(data.test)
    assert not idx["train"] & idx["reward_val"]
    assert not idx["train"] & idx["test"]
    assert not idx["reward_val"] & idx["test"]
    assert idx["train"] | idx["reward_val"] | idx["test"] == set(range(1797))
    assert len(data.test) == 360  # a fixed 20% slice
    assert len(data.reward_val) == default_reward_val_size(1797 - 360) == 144
    assert (data.num_classes, data.in_channels, data.image_size) == (10, 1, (8, 8))
    assert data.example_input.shape == (1, 1, 8, 8)


def test_same_seed_same_split_other_seed_other_reward_val() -> None:
    a, b, c = (
        build_data("digits", seed=3),
        build_data("digits", seed=3),
        build_data("digits", seed=4),
    )
    for s in SPLITS:
        np.testing.assert_array_equal(a.indices[s], b.indices[s])
    assert not np.array_equal(a.indices["reward_val"], c.indices["reward_val"])
    # The test slice is the same whatever the split seed: reports stay comparable.
    np.testing.assert_array_equal(a.indices["test"], c.indices["test"])
    x1, y1 = a.tensors("reward_val")
    x2, y2 = b.tensors("reward_val")
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_reward_val_and_test_never_reach_training_batches(seed: int) -> None:
    data = build_data("synthetic", seed=seed, shape=(1, 4, 4), size=200)
    pool = data.train.pool.images.flatten(1)

    def pool_rows(x: torch.Tensor) -> list[int]:
        """Which pool samples a batch holds (synthetic samples are unique random floats)."""
        hits = (x.flatten(1)[:, None, :] == pool[None]).all(-1).nonzero()
        assert len(hits) == len(x)
        return hits[:, 1].tolist()

    served = [i for x, _ in data.loader("train", batch_size=16, seed=seed) for i in pool_rows(x)]
    assert sorted(served) == sorted(data.indices["train"].tolist())  # one epoch: all of train
    assert set(served).isdisjoint(data.indices["reward_val"].tolist())
    assert set(served).isdisjoint(data.indices["test"].tolist())
    calibration = [i for x, _ in data.calibration_batches(3, 8, seed=seed) for i in pool_rows(x)]
    assert set(calibration) <= set(data.indices["train"].tolist())
    reward = [i for x, _ in data.loader("reward_val", batch_size=16) for i in pool_rows(x)]
    assert reward == data.indices["reward_val"].tolist()


def test_split_indices_are_read_only() -> None:
    data = build_data("digits")
    with pytest.raises(ValueError, match="read-only"):
        data.indices["train"][0] = 5
    with pytest.raises(TypeError):
        data.indices["train"] = np.arange(3)  # type: ignore[index]


def test_samples_really_come_from_their_indices() -> None:
    data = build_data("synthetic", shape=(2, 3, 3), size=60, seed=2)
    pool = data.test.pool
    for split in SPLITS:
        ds = data.plain(split)
        for i in (0, len(ds) - 1):
            x, y = ds[i]
            j = int(ds.indices[i])
            assert torch.equal(x, pool.images[j]) and y == int(pool.labels[j])


def test_reward_val_size_validation_and_override() -> None:
    assert len(build_data("digits", reward_val_size=300).reward_val) == 300
    assert len(build_data("digits", reward_val_size=300).train) == 1437 - 300
    for bad in (0, 1437, -5):
        with pytest.raises(ValueError, match="reward_val_size must be in"):
            build_data("digits", reward_val_size=bad)
    with pytest.raises(ValueError, match="must be an integer"):
        build_data("digits", reward_val_size=0.5)  # type: ignore[arg-type]
    assert default_reward_val_size(60000) == 5000
    assert default_reward_val_size(1000) == 100


def test_unknown_dataset_option_and_download_errors() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'") as err:
        build_data("mnist")
    for name in dataset_names():
        assert name in str(err.value)
    with pytest.raises(ValueError, match="does not take option"):
        build_data("digits", augment=True)
    with pytest.raises(ValueError, match="cannot be downloaded"):
        build_data("digits", download=True)


# ----------------------------------------------------------------------------- loaders


def test_loader_is_seeded_and_eval_splits_are_not_shuffled() -> None:
    data = build_data("digits")

    def labels(loader: torch.utils.data.DataLoader) -> list[int]:
        return torch.cat([y for _, y in loader]).tolist()

    assert labels(data.loader("train", 64, seed=5)) == labels(data.loader("train", 64, seed=5))
    assert labels(data.loader("train", 64, seed=5)) != labels(data.loader("train", 64, seed=6))
    test_labels = labels(data.loader("test", 50))
    assert test_labels == data.tensors("test")[1].tolist()
    with pytest.raises(ValueError, match="unknown split"):
        data.loader("validation")


def test_calibration_batches_are_train_only_distinct_and_deterministic() -> None:
    data = build_data("synthetic", shape=(1, 2, 2), size=100)
    a = data.calibration_batches(4, batch_size=8, seed=1)
    b = data.calibration_batches(4, batch_size=8, seed=1)
    assert len(a) == 4 and all(x.shape == (8, 1, 2, 2) and y.shape == (8,) for x, y in a)
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b, strict=True))
    # Find each calibration sample in the pool: all distinct and all from train.
    pool = data.train.pool.images
    found = []
    for x, _ in a:
        for row in x:
            hits = (pool == row).flatten(1).all(1).nonzero().flatten().tolist()
            found += hits
    assert len(found) == len(set(found)) == 32
    assert set(found) <= set(data.indices["train"].tolist())
    with pytest.raises(ValueError, match="need 800 samples"):
        data.calibration_batches(100, batch_size=8)


def test_tensors_matches_the_dataset() -> None:
    data = build_data("digits")
    x, y = data.tensors("reward_val", limit=10)
    assert x.shape == (10, 1, 8, 8)
    for i in range(10):
        xi, yi = data.reward_val[i]
        assert torch.allclose(x[i], xi) and int(y[i]) == yi
    x_all, _ = data.tensors("test")
    assert len(x_all) == len(data.test)
    # Normalised: roughly zero mean, unit spread.
    assert abs(float(x_all.mean())) < 0.1 and 0.8 < float(x_all.std()) < 1.2


# ----------------------------------------------------------------------------- fashion-mnist


@pytest.mark.parametrize(("gz", "dotted"), [(True, False), (False, False), (True, True)])
def test_fashion_mnist_from_explicit_dir(tmp_path: Path, gz: bool, dotted: bool) -> None:
    root = _write_fake_fmnist(tmp_path / "fm", gz=gz, dotted=dotted)
    data = build_data("fashion-mnist", data_dir=root)
    assert [len(data.split(s)) for s in SPLITS] == [45, 5, 20]
    assert data.indices["test"].tolist() == list(range(50, 70))  # after the train files
    assert data.example_input.shape == (1, 1, 28, 28)
    # Sample i of test is t10k image i: fingerprint and label survive the pipeline.
    x, y = data.tensors("test")
    raw = x[:, 0, 0, 0] * data.std[0] + data.mean[0]
    assert torch.allclose(raw * 255, torch.arange(20, dtype=torch.float32), atol=1e-3)
    assert y.tolist() == [i % 10 for i in range(20)]
    assert data.options["data_dir"] == str(root)


def test_fashion_mnist_search_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_system_data: Path
) -> None:
    env_root = tmp_path / "env"
    _write_fake_fmnist(env_root / "fashion-mnist", n_train=40)
    system = _write_fake_fmnist(no_system_data, n_train=30)
    # Nothing in $PRUNEGYM_DATA: the system directory is used.
    assert len(build_data("fashion-mnist", reward_val_size=3).train) == 27
    # $PRUNEGYM_DATA (here via its fashion-mnist/ subdirectory) comes before the system dir.
    monkeypatch.setenv("PRUNEGYM_DATA", str(env_root))
    assert len(build_data("fashion-mnist", reward_val_size=3).train) == 37
    # An explicit dir comes first, and is the only place looked at when given.
    explicit = _write_fake_fmnist(tmp_path / "explicit", n_train=20)
    assert len(build_data("fashion-mnist", reward_val_size=3, data_dir=explicit).train) == 17
    with pytest.raises(FileNotFoundError, match="nowhere-dir"):
        build_data("fashion-mnist", data_dir=tmp_path / "nowhere-dir")
    assert system.is_dir()


def test_missing_fashion_mnist_says_where_it_looked_and_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_system_data: Path
) -> None:
    monkeypatch.setenv("PRUNEGYM_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as err:
        build_data("fashion-mnist")
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "env") in message and str(no_system_data) in message
    assert "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message


def test_incomplete_fashion_mnist_dir(tmp_path: Path) -> None:
    root = _write_fake_fmnist(tmp_path / "fm")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"incomplete: missing t10k-labels-idx1-ubyte"):
        build_data("fashion-mnist", data_dir=root)


def test_corrupt_fashion_mnist_is_a_clear_error(tmp_path: Path) -> None:
    root = _write_fake_fmnist(tmp_path / "fm", gz=False)
    path = root / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IDXError, match="truncated IDX data"):
        build_data("fashion-mnist", data_dir=root)
    root2 = _write_fake_fmnist(tmp_path / "fm2")
    write_idx(root2 / "t10k-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(IDXError, match="do not match 20 images"):
        build_data("fashion-mnist", data_dir=root2)
    write_idx(root2 / "t10k-labels-idx1-ubyte.gz", np.full(20, 12, dtype=np.uint8))
    with pytest.raises(IDXError, match=r"outside 0\.\.9"):
        build_data("fashion-mnist", data_dir=root2)


def test_fashion_mnist_training_view_is_augmented_eval_views_are_not(tmp_path: Path) -> None:
    data = build_data("fashion-mnist", data_dir=_write_fake_fmnist(tmp_path / "fm"))
    torch.manual_seed(0)
    views = torch.stack([data.train[0][0] for _ in range(12)])
    assert len({v.numpy().tobytes() for v in views}) > 1  # random crop / flip
    assert torch.equal(data.reward_val[0][0], data.reward_val[0][0])
    assert torch.equal(data.plain("train")[0][0], data.plain("train")[0][0])
    plain = build_data("fashion-mnist", data_dir=tmp_path / "fm", augment=False)
    assert not plain.train.augment
    assert torch.equal(plain.train[0][0], data.plain("train")[0][0])


# ----------------------------------------------------------------------------- others


def test_build_data_like_rebuilds_the_recorded_split(tmp_path: Path) -> None:
    root = _write_fake_fmnist(tmp_path / "fm")
    data = build_data("fashion-mnist", reward_val_size=7, seed=9, data_dir=root)
    again = build_data_like(data.describe())
    for s in SPLITS:
        np.testing.assert_array_equal(again.indices[s], data.indices[s])
    description = data.describe()
    description["sizes"] = {"train": 1, "reward_val": 7, "test": 20}
    with pytest.raises(ValueError, match="recorded"):
        build_data_like(description)
    synthetic = build_data("synthetic", shape=(1, 5, 5), num_classes=3, size=40, seed=2)
    assert build_data_like(synthetic.describe()).indices["train"].tolist() == (
        synthetic.indices["train"].tolist()
    )


def test_synthetic_shape_and_classes() -> None:
    data = build_data("synthetic", shape=(1, 6, 5), num_classes=4, size=80)
    assert data.example_input.shape == (1, 1, 6, 5)
    assert (data.num_classes, data.in_channels, data.image_size) == (4, 1, (6, 5))
    assert set(data.tensors("train")[1].tolist()) <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match="shape must be"):
        build_data("synthetic", shape=(3, 32))


def test_cifar10_is_never_downloaded_implicitly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRUNEGYM_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="--download"):
        build_data("cifar10", data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing fetched, nothing created
    with pytest.raises(FileNotFoundError, match="PRUNEGYM_DATA unset"):
        build_data("cifar10")


def test_imagefolder_flat_and_train_val(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)

    def write(root: Path, per_class: int) -> None:
        for cls in ("cat", "dog"):
            (root / cls).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / cls / f"{i}.png")

    write(tmp_path / "flat", 10)
    flat = build_data("imagefolder", data_dir=tmp_path / "flat", image_size=8)
    assert [len(flat.split(s)) for s in SPLITS] == [14, 2, 4]
    assert flat.num_classes == 2 and flat.example_input.shape == (1, 3, 8, 8)
    x, y = next(iter(flat.loader("train", batch_size=4)))
    assert x.shape == (4, 3, 8, 8) and y.dtype == torch.int64

    write(tmp_path / "tv" / "train", 6)
    write(tmp_path / "tv" / "val", 2)
    split = build_data("imagefolder", data_dir=tmp_path / "tv", image_size=8, reward_val_size=2)
    assert [len(split.split(s)) for s in SPLITS] == [10, 2, 4]
    assert split.indices["test"].tolist() == [12, 13, 14, 15]
    with pytest.raises(FileNotFoundError, match="class folder"):
        build_data("imagefolder", data_dir=tmp_path / "tv" / "train" / "cat")


def test_data_splits_survive_deepcopy_as_gymnasium_makes() -> None:
    import copy

    data = build_data("digits", seed=0)
    assert copy.deepcopy(data) is data


def test_a_registered_loader_is_a_dataset_like_the_built_in_ones() -> None:
    from prunegym.experiments.data.pools import TensorPool
    from prunegym.experiments.data.registry import DATASETS, LoadedData, register_dataset
    from prunegym.experiments.data.transforms import TensorTransform

    seen: list[dict] = []

    def load_ramp(request):  # type: ignore[no-untyped-def]
        seen.append(dict(request.options))
        n = int(request.options.get("n", 40))
        images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
        t = TensorTransform((0.0,), (1.0,), scale=1.0)
        pool = TensorPool(images, torch.arange(n) % 2)
        return LoadedData(pool, n, False, 2, 1, (1, 1), (0.0,), (1.0,), t, t, False, {"n": n})

    try:
        register_dataset("ramp-test", "a ramp", options=("n",))(load_ramp)
        assert "ramp-test" in dataset_names()
        data = build_data("RAMP-test", reward_val_size=4, n=50)
        assert seen == [{"n": 50}]
        assert [len(data.split(s)) for s in SPLITS] == [36, 4, 10]
        assert build_data_like(data.describe()).indices["reward_val"].tolist() == (
            data.indices["reward_val"].tolist()
        )
        with pytest.raises(ValueError, match="'ramp-test' does not take option"):
            build_data("ramp-test", size=3)
        assert len(seen) == 2  # the unknown option is refused before the loader runs
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("ramp-test", "again")(load_ramp)
    finally:
        DATASETS.pop("ramp-test", None)


# ----------------------------------------------------------------------------- reward != test


def _fake_cifar10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CIFAR-10 directory torchvision would accept, served by a stand-in reader."""
    import torchvision

    root = tmp_path / "cifar"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"")

    class FakeCIFAR10:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            n = 60 if train else 20
            rng = np.random.default_rng(int(train))
            self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            self.targets = [i % 10 for i in range(n)]

        def __len__(self) -> int:
            return len(self.targets)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    return root


def _tiny_imagefolder(root: Path) -> Path:
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(8 if split == "train" else 3):
                Image.new("RGB", (6, 6), (30 * i, 0, 0)).save(root / split / cls / f"{i}.png")
    return root


@pytest.mark.parametrize("name", dataset_names())
def test_the_reward_split_is_never_the_test_split(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builders = {
        "digits": lambda: {},
        "synthetic": lambda: {"size": 100, "shape": (1, 4, 4)},
        "fashion-mnist": lambda: {"data_dir": _write_fake_fmnist(tmp_path / "fm")},
        "imagefolder": lambda: {"data_dir": _tiny_imagefolder(tmp_path / "if"), "image_size": 4},
        "cifar10": lambda: {"data_dir": _fake_cifar10(tmp_path, monkeypatch)},
    }
    assert name in builders, f"no split test for the registered dataset {name!r}"
    kwargs = builders[name]()
    for seed in (0, 1, 2):
        data = build_data(name, seed=seed, **kwargs)
        idx = {s: set(data.indices[s].tolist()) for s in SPLITS}
        assert idx["reward_val"] and idx["test"] and idx["train"]
        assert not idx["reward_val"] & idx["test"]
        assert not idx["train"] & (idx["reward_val"] | idx["test"])
        assert sum(map(len, idx.values())) == len(data.train.pool)  # every sample in one split


def test_splits_that_share_samples_are_refused() -> None:
    import dataclasses

    data = build_data("digits")
    with pytest.raises(ValueError, match="reward_val and test share 144 samples"):
        dataclasses.replace(data, test=data.reward_val)
    with pytest.raises(ValueError, match="train and reward_val share"):
        dataclasses.replace(data, reward_val=data.train)
