"""Train a base model, evaluate it, fine-tune a pruned one (optionally distilling the dense one).

``train`` and ``fine_tune`` change the model's weights and nothing else: it goes back to
the device and train/eval mode it came with. ``evaluate`` changes nothing at all. Runs
are seeded inside ``torch.random.fork_rng``, so the caller's global RNG is left alone and
the same seed gives the same weights (on CPU; CUDA kernels may differ in the last bits).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from prunegym.experiments.data import DataSplits

__all__ = [
    "OPTIMIZERS",
    "EpochStats",
    "EvalResult",
    "TrainResult",
    "TrainingDiverged",
    "distillation_loss",
    "evaluate",
    "fine_tune",
    "resolve_device",
    "train",
]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
OPTIMIZERS = ("sgd", "adamw")


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite (usually: learning rate too high)."""


@dataclass(frozen=True)
class EvalResult:
    """Top-1 / top-5 accuracy (fractions in [0, 1]) and mean cross-entropy over ``samples``."""

    top1: float
    top5: float
    loss: float
    samples: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class EpochStats:
    """One epoch: mean training loss and accuracy over its batches (train mode, augmented).

    With a teacher, ``loss = alpha * kd_loss + (1 - alpha) * ce_loss``; ``val`` is the
    optional per-epoch evaluation.
    """

    epoch: int
    loss: float
    accuracy: float
    lr: float
    seconds: float
    ce_loss: float
    kd_loss: float | None = None
    val: EvalResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """The history of a ``train`` / ``fine_tune`` call and how it was run."""

    history: tuple[EpochStats, ...]
    seconds: float
    device: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> EpochStats:
        return self.history[-1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "device": self.device,
            "config": dict(self.config),
            "history": [e.as_dict() for e in self.history],
        }


# ----------------------------------------------------------------------------- helpers


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is cuda when present, else cpu; an unavailable device is a ValueError."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return dev


def _model_device(model: nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device()
    return (a.index if a.index is not None else current) == (
        b.index if b.index is not None else current
    )


def _on_device(model: nn.Module, device: torch.device) -> nn.Module:
    """The model itself when it already lives on ``device``, else a copy moved there."""
    if _same_device(_model_device(model), device):
        return model
    return copy.deepcopy(model).to(device)


def _fork_rng(device: torch.device) -> Any:
    cuda = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=cuda)


def _train_loader(
    data: DataSplits | Iterable, batch_size: int, seed: int, num_workers: int, pin: bool
) -> Iterable:
    if hasattr(data, "loader") and hasattr(data, "train"):
        return data.loader(
            "train", batch_size, shuffle=True, seed=seed, num_workers=num_workers, pin_memory=pin
        )
    return data


def _check_common(epochs: int, batch_size: int, optimizer: str, label_smoothing: float) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")


def _make_optimizer(
    name: str, model: nn.Module, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0
        )
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to zero, per optimizer step."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Hinton's KD term: ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, batch mean."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)


# ----------------------------------------------------------------------------- the loop


def _fit(
    model: nn.Module,
    batches: Iterable,
    *,
    epochs: int,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    label_smoothing: float,
    warmup_epochs: float,
    device: torch.device,
    progress: bool,
    val: Batches | None,
    after_step: Callable[[nn.Module], None] | None,
    teacher: nn.Module | None,
    temperature: float,
    alpha: float,
    desc: str,
) -> tuple[EpochStats, ...]:
    opt = _make_optimizer(optimizer, model, lr, momentum, weight_decay)
    try:
        steps_per_epoch = len(batches)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError("training data must have a length (a DataLoader or a list)") from None
    if steps_per_epoch == 0:
        raise ValueError("training data is empty")
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _cosine(total, round(warmup_epochs * steps_per_epoch))
    )
    history: list[EpochStats] = []
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        lr_now = opt.param_groups[0]["lr"]
        n = correct = 0
        loss_sum = ce_sum = kd_sum = 0.0
        bar = tqdm(
            batches,
            desc=f"{desc} {epoch}/{epochs}",
            disable=not progress,
            unit="batch",
            mininterval=0.5 if sys.stderr.isatty() else 10.0,
            dynamic_ncols=True,
        )
        for step, (x, y) in enumerate(bar):
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            logits = model(x)
            ce = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            if teacher is not None:
                with torch.no_grad():
                    teacher_logits = teacher(x)
                kd = distillation_loss(logits, teacher_logits, temperature)
                loss = alpha * kd + (1.0 - alpha) * ce
            else:
                kd, loss = None, ce
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"training diverged: loss {loss.item()} at epoch {epoch}, step {step + 1} "
                    f"(lr {lr_now:g}); try a lower learning rate"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                after_step(model)
            b = len(y)
            n += b
            loss_sum += loss.item() * b
            ce_sum += ce.item() * b
            if kd is not None:
                kd_sum += kd.item() * b
            correct += int((logits.argmax(1) == y).sum())
            if progress:
                bar.set_postfix(loss=f"{loss_sum / n:.4f}", acc=f"{correct / n:.4f}", refresh=False)
        bar.close()
        history.append(
            EpochStats(
                epoch=epoch,
                loss=loss_sum / n,
                accuracy=correct / n,
                lr=lr_now,
                seconds=time.perf_counter() - start,
                ce_loss=ce_sum / n,
                kd_loss=kd_sum / n if teacher is not None else None,
                val=evaluate(model, val, device=device) if val is not None else None,
            )
        )
    return tuple(history)


def _run(
    model: nn.Module,
    data: DataSplits | Iterable,
    epochs: int,
    *,
    kind: str,
    batch_size: int,
    optimizer: str,
    lr: float | None,
    default_lr: dict[str, float],
    momentum: float,
    weight_decay: float | None,
    label_smoothing: float,
    warmup_epochs: float,
    seed: int,
    device: str | torch.device,
    progress: bool,
    num_workers: int,
    val: Batches | None,
    after_step: Callable[[nn.Module], None] | None,
    teacher: nn.Module | None = None,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> TrainResult:
    _check_common(epochs, batch_size, optimizer, label_smoothing)
    dev = resolve_device(device)
    lr = default_lr[optimizer] if lr is None else lr
    if weight_decay is None:
        weight_decay = 5e-4 if optimizer == "sgd" else 0.05
    config = {
        "kind": kind,
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "lr": lr,
        "momentum": momentum if optimizer == "sgd" else None,
        "weight_decay": weight_decay,
        "schedule": "cosine",
        "warmup_epochs": warmup_epochs,
        "label_smoothing": label_smoothing,
        "seed": seed,
    }
    if teacher is not None:
        config.update(teacher=True, temperature=temperature, alpha=alpha)
    home, was_training = _model_device(model), model.training
    teacher_model, teacher_training = None, None
    start = time.perf_counter()
    with _fork_rng(dev):
        torch.manual_seed(seed)
        batches = _train_loader(data, batch_size, seed, num_workers, dev.type == "cuda")
        try:
            model.to(dev)
            if teacher is not None:
                teacher_model, teacher_training = _on_device(teacher, dev), teacher.training
                teacher_model.eval()
            history = _fit(
                model, batches, epochs=epochs, optimizer=optimizer, lr=lr, momentum=momentum,
                weight_decay=weight_decay, label_smoothing=label_smoothing,
                warmup_epochs=warmup_epochs, device=dev, progress=progress, val=val,
                after_step=after_step, teacher=teacher_model, temperature=temperature,
                alpha=alpha, desc=kind,
            )  # fmt: skip
        finally:
            model.to(home)
            model.train(was_training)
            if teacher is not None and teacher_training is not None:
                teacher.train(teacher_training)
    return TrainResult(history, time.perf_counter() - start, str(dev), config)


# ----------------------------------------------------------------------------- public API


def train(
    model: nn.Module,
    data: DataSplits | Iterable,
    epochs: int,
    *,
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float | None = None,
    momentum: float = 0.9,
    weight_decay: float | None = None,
    label_smoothing: float = 0.0,
    warmup_epochs: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    num_workers: int = 0,
    val: Batches | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data.train`` (or any sized iterable of ``(x, y)`` batches).

    SGD (Nesterov momentum 0.9, lr 0.1, weight decay 5e-4) or AdamW (lr 1e-3, weight
    decay 0.05), cosine schedule per step with optional linear warm-up. ``val`` is
    evaluated after every epoch when given (never pass the test split here).
    ``after_step(model)`` runs after each optimizer step (e.g. to re-apply pruning masks).
    """
    return _run(
        model, data, epochs, kind="train", batch_size=batch_size, optimizer=optimizer, lr=lr,
        default_lr={"sgd": 0.1, "adamw": 1e-3}, momentum=momentum, weight_decay=weight_decay,
        label_smoothing=label_smoothing, warmup_epochs=warmup_epochs, seed=seed, device=device,
        progress=progress, num_workers=num_workers, val=val, after_step=after_step,
    )  # fmt: skip


def fine_tune(
    pruned: nn.Module,
    data: DataSplits | Iterable,
    epochs: int,
    teacher: nn.Module | None = None,
    temperature: float = 4.0,
    alpha: float = 0.9,
    *,
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float | None = None,
    momentum: float = 0.9,
    weight_decay: float | None = None,
    label_smoothing: float = 0.0,
    warmup_epochs: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    num_workers: int = 0,
    val: Batches | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
) -> TrainResult:
    """Fine-tune a pruned model in place; with ``teacher``, distil from it (Hinton et al.).

    The loss is ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE`` with
    ``T = temperature``; the teacher runs in eval mode under no_grad and is not changed.
    Defaults as ``train`` but a 10x smaller learning rate (0.01 SGD, 1e-4 AdamW).
    """
    if teacher is not None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return _run(
        pruned, data, epochs, kind="fine-tune", batch_size=batch_size, optimizer=optimizer,
        lr=lr, default_lr={"sgd": 0.01, "adamw": 1e-4}, momentum=momentum,
        weight_decay=weight_decay, label_smoothing=label_smoothing, warmup_epochs=warmup_epochs,
        seed=seed, device=device, progress=progress, num_workers=num_workers, val=val,
        after_step=after_step, teacher=teacher, temperature=temperature, alpha=alpha,
    )  # fmt: skip


def evaluate(
    model: nn.Module,
    loader: Batches,
    *,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """Top-1, top-5 and mean cross-entropy of ``model`` over ``loader``'s ``(x, y)`` batches.

    Runs in eval mode under ``torch.inference_mode``; the model is not changed (its mode is
    restored; on another ``device`` a copy is evaluated). ``device=None``: the model's own.
    """
    from itertools import islice

    from prunegym.envs.scoring import score_batches

    dev = _model_device(model) if device is None else resolve_device(device)
    batches = islice(tqdm(loader, desc="eval", disable=not progress), max_batches)
    s = score_batches(_on_device(model, dev), batches, device=dev)
    return EvalResult(top1=s.top1, top5=s.top5, loss=s.loss, samples=s.samples)
