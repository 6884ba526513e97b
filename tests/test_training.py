"""Training, evaluation and fine-tuning (with distillation) on small real data."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunegym.experiments.data import DataSplits, build_data
from prunegym.experiments.models import build_model
from prunegym.experiments.training import (
    TrainingDiverged,
    TrainOptions,
    distillation_loss,
    evaluate,
    fine_tune,
    resolve_device,
    train,
)


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return build_data("digits")


@pytest.fixture(scope="module")
def trained(digits: DataSplits) -> nn.Module:
    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, num_classes=10)
    train(model, digits, epochs=3, batch_size=64, lr=0.05, seed=0, progress=False)
    return model


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_on_digits_beats_chance_by_far(digits: DataSplits, trained: nn.Module) -> None:
    torch.manual_seed(0)
    untrained = build_model("smallcnn", in_channels=1, num_classes=10)
    before = evaluate(untrained, digits.loader("test", 256))
    after = evaluate(trained, digits.loader("test", 256))
    assert before.top1 < 0.3  # chance is 0.1
    assert after.top1 > 0.85
    assert after.top5 >= after.top1 and after.top5 > 0.97
    assert after.loss < before.loss
    assert after.samples == len(digits.test) == 360


def test_train_returns_history_and_restores_mode_and_device(digits: DataSplits) -> None:
    torch.manual_seed(1)
    model = build_model("smallcnn", in_channels=1, num_classes=10).eval()
    result = train(
        model,
        digits,
        epochs=2,
        batch_size=128,
        lr=0.05,
        progress=False,
        val=digits.loader("reward_val"),
    )
    assert [e.epoch for e in result.history] == [1, 2]
    assert result.history[1].loss < result.history[0].loss
    assert result.history[0].lr == pytest.approx(0.05)  # cosine starts at the base rate
    assert result.history[1].lr < 0.05
    assert all(
        e.val is not None and e.val.samples == len(digits.reward_val) for e in result.history
    )
    assert result.final is result.history[-1]
    assert result.device == str(resolve_device("auto"))
    assert result.config["optimizer"] == "sgd" and result.config["schedule"] == "cosine"
    assert not model.training  # the caller's mode is kept
    assert next(model.parameters()).device.type == "cpu"
    record = result.as_dict()
    assert record["history"][0]["val"]["samples"] == len(digits.reward_val)


def test_same_seed_same_weights_and_global_rng_untouched(digits: DataSplits) -> None:
    models = []
    for _ in range(2):
        torch.manual_seed(5)
        models.append(build_model("smallcnn", in_channels=1, num_classes=10))
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    for m in models:
        train(m, digits, epochs=1, batch_size=256, seed=7, device="cpu", progress=False)
    assert torch.equal(torch.rand(3), expected_next)  # train() forks the RNG
    a, b = _state(models[0]), _state(models[1])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_adamw_and_label_smoothing(digits: DataSplits) -> None:
    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, num_classes=10)
    result = train(
        model, digits, 2, batch_size=32, optimizer="adamw", label_smoothing=0.1, progress=False
    )
    assert result.config["lr"] == pytest.approx(1e-3) and result.config["weight_decay"] == 0.05
    assert evaluate(model, digits.loader("reward_val")).top1 > 0.5


def test_evaluate_never_mutates_the_model(digits: DataSplits, trained: nn.Module) -> None:
    trained.train()
    before = _state(trained)
    result = evaluate(trained, digits.loader("reward_val", 64))
    assert trained.training  # mode restored
    after = _state(trained)
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats included
    assert 0.0 <= result.top1 <= result.top5 <= 1.0
    limited = evaluate(trained, digits.loader("reward_val", 64), max_batches=1)
    assert limited.samples == 64


def test_evaluate_known_values() -> None:
    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    # Logits are the inputs: sample 0 right at top-1, sample 1 right only at top-5 (rank 3).
    logits = torch.tensor([[5.0, 1, 0, 0, 0, 0, 0], [0.0, 4, 3, 2, 1, 0, -1]])
    labels = torch.tensor([0, 3])
    result = evaluate(Fixed(), [(logits, labels)])
    assert (result.top1, result.top5, result.samples) == (0.5, 1.0, 2)
    expected = nn.functional.cross_entropy(logits, labels).item()
    assert result.loss == pytest.approx(expected)
    with pytest.raises(ValueError, match="no samples"):
        evaluate(Fixed(), [])


def test_fine_tune_with_teacher_includes_distillation(
    digits: DataSplits, trained: nn.Module
) -> None:
    teacher_state = _state(trained)
    trained.train()
    torch.manual_seed(3)
    student = build_model("smallcnn", in_channels=1, num_classes=10)
    plain_student = copy.deepcopy(student)
    alpha = 0.7
    kd = fine_tune(
        student, digits, 1, teacher=trained, temperature=3.0, alpha=alpha, lr=0.05, progress=False
    )
    plain = fine_tune(plain_student, digits, 1, lr=0.05, progress=False)
    epoch = kd.final
    assert epoch.kd_loss is not None and epoch.kd_loss > 0.01
    assert epoch.loss == pytest.approx(
        alpha * epoch.kd_loss + (1 - alpha) * epoch.ce_loss, rel=1e-4
    )
    assert plain.final.kd_loss is None and plain.final.loss == pytest.approx(plain.final.ce_loss)
    assert kd.config["teacher"] and kd.config["temperature"] == 3.0
    # The distillation term changes the optimisation: same seed, different weights.
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            student.state_dict().values(), plain_student.state_dict().values(), strict=True
        )
    )
    # The teacher is left exactly as it was (weights, BN statistics, mode).
    assert all(torch.equal(teacher_state[k], v) for k, v in trained.state_dict().items())
    assert trained.training


def test_distillation_loss_values() -> None:
    logits = torch.randn(4, 10)
    assert distillation_loss(logits, logits, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(4, 10)
    t = 2.0
    p = torch.softmax(other / t, 1)
    manual = (p * (p.log() - torch.log_softmax(logits / t, 1))).sum(1).mean() * t * t
    assert distillation_loss(logits, other, t).item() == pytest.approx(manual.item(), rel=1e-5)


def test_after_step_hook_keeps_masks(digits: DataSplits) -> None:
    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, num_classes=10)
    conv = model.features[0]
    mask = torch.ones_like(conv.weight)
    mask[:8] = 0

    def reapply(m: nn.Module) -> None:
        with torch.no_grad():
            m.features[0].weight.mul_(mask)

    fine_tune(model, digits, 1, lr=0.05, progress=False, after_step=reapply)
    assert conv.weight[:8].abs().sum() == 0 and conv.weight[8:].abs().sum() > 0


def test_bad_arguments(digits: DataSplits) -> None:
    model = build_model("smallcnn", in_channels=1, num_classes=10)
    for epochs in (0, -1, 1.5):
        with pytest.raises(ValueError, match="epochs must be a positive integer"):
            train(model, digits, epochs, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        train(model, digits, 1, optimizer="adam", progress=False)
    with pytest.raises(ValueError, match="temperature"):
        fine_tune(model, digits, 1, teacher=model, temperature=0, progress=False)
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_divergence_is_reported(digits: DataSplits) -> None:
    model = build_model("smallcnn", in_channels=1, num_classes=10)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="lower learning rate"):
        train(model, digits, 1, progress=False)


def test_after_epoch_hook_gets_each_epoch_as_it_ends() -> None:
    x, y = torch.randn(64, 4), torch.arange(64) % 2
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    model = nn.Linear(4, 2)
    seen: list[tuple[int, float]] = []
    result = train(model, batches, 3, progress=False,
                   after_epoch=lambda s: seen.append((s.epoch, s.seconds)))  # fmt: skip
    assert seen == [(e.epoch, e.seconds) for e in result.history] and len(seen) == 3


def test_train_accepts_any_sized_batches() -> None:
    data = build_data("synthetic", shape=(1, 4, 4), num_classes=3, size=120)
    x, y = data.tensors("train")
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, len(x), 16)]
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    result = train(model, batches, 5, lr=0.05, progress=False)
    assert result.final.accuracy > 0.8  # class prototypes are linearly separable


def test_train_options_are_one_object_and_keywords_override_them(digits: DataSplits) -> None:
    options = TrainOptions(batch_size=256, lr=0.05, seed=3, device="cpu", progress=False)
    models = []
    for _ in range(3):
        torch.manual_seed(0)
        models.append(build_model("smallcnn", in_channels=1, num_classes=10))
    by_options = train(models[0], digits, 1, options)
    by_keywords = train(models[1], digits, 1, batch_size=256, lr=0.05, seed=3, progress=False)
    a, b = _state(models[0]), _state(models[1])
    assert all(torch.equal(a[k], b[k]) for k in a)  # same settings, same weights
    assert by_options.config == {**by_keywords.config}
    overridden = train(models[2], digits, 1, options, lr=0.02)
    assert overridden.config["lr"] == 0.02 and overridden.config["batch_size"] == 256
    assert options.lr == 0.05  # the caller's options are not changed
    tuned = fine_tune(models[2], digits, 1, options=TrainOptions(progress=False, batch_size=512))
    assert tuned.config["lr"] == 0.01 and tuned.config["kind"] == "fine-tune"
    with pytest.raises(TypeError, match="unexpected keyword argument 'learning_rate'"):
        train(models[2], digits, 1, learning_rate=0.1)
    with pytest.raises(TypeError, match="must be a TrainOptions"):
        train(models[2], digits, 1, {"lr": 0.1})  # type: ignore[arg-type]
