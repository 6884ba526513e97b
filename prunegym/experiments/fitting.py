"""The optimisation loop behind ``train`` / ``fine_tune``: options, optimizer, schedule, KD.

:class:`TrainOptions` holds every setting of a run once; :func:`fit` runs the epochs on
batches that are already on their way (no device or RNG handling: the caller does that).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = [
    "OPTIMIZERS",
    "Distillation",
    "EpochStats",
    "EvalResult",
    "TrainOptions",
    "TrainingDiverged",
    "distillation_loss",
    "fit",
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
class TrainOptions:
    """How ``train`` / ``fine_tune`` run; every field has a default.

    ``lr`` / ``weight_decay`` ``None``: the optimizer's default (``train``: SGD 0.1,
    AdamW 1e-3; ``fine_tune`` 10x smaller; weight decay SGD 5e-4, AdamW 0.05). ``val``
    is evaluated after every epoch when given (never pass the test split here);
    ``after_step(model)`` runs after each optimizer step (e.g. to re-apply pruning masks),
    ``after_epoch(stats)`` after each epoch with its :class:`EpochStats` (e.g. to report
    progress or an estimate of the time left). ``train_samples`` (data splits only): fit
    on that many training samples drawn with ``seed`` (``DataSplits.train_subset``; the
    same seed, the same samples); ``None``: the whole train split.
    """

    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    label_smoothing: float = 0.0
    warmup_epochs: float = 0.0
    seed: int = 0
    train_samples: int | None = None
    device: str | torch.device = "auto"
    progress: bool = True
    num_workers: int = 0
    val: Batches | None = None
    after_step: Callable[[nn.Module], None] | None = None
    after_epoch: Callable[[EpochStats], None] | None = None

    def updated(self, overrides: Mapping[str, Any], caller: str) -> TrainOptions:
        """A copy with ``overrides`` (field names; anything else is a TypeError)."""
        names = {f.name for f in dataclasses.fields(self)}
        for key in overrides:
            if key not in names:
                raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")
        return dataclasses.replace(self, **overrides) if overrides else self

    def resolved(self, default_lr: Mapping[str, float]) -> TrainOptions:
        """Checked, with ``lr`` and ``weight_decay`` filled in for the chosen optimizer."""
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        lr = default_lr[self.optimizer] if self.lr is None else self.lr
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        decay = self.weight_decay
        if decay is None:
            decay = 5e-4 if self.optimizer == "sgd" else 0.05
        return dataclasses.replace(self, lr=lr, weight_decay=decay)

    def record(self) -> dict[str, Any]:
        """The plain-data settings a ``TrainResult.config`` records."""
        return {
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "momentum": self.momentum if self.optimizer == "sgd" else None,
            "weight_decay": self.weight_decay,
            "schedule": "cosine",
            "warmup_epochs": self.warmup_epochs,
            "label_smoothing": self.label_smoothing,
            "seed": self.seed,
            "train_samples": self.train_samples,
        }


@dataclass(frozen=True)
class Distillation:
    """Knowledge distillation from ``teacher`` (in eval mode on the training device)."""

    teacher: nn.Module
    temperature: float = 4.0
    alpha: float = 0.9

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


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


def _make_optimizer(model: nn.Module, opts: TrainOptions) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    lr, decay = float(opts.lr or 0.0), float(opts.weight_decay or 0.0)
    if opts.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=opts.momentum, weight_decay=decay, nesterov=opts.momentum > 0
        )
    return torch.optim.AdamW(params, lr=lr, weight_decay=decay)


def _cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to zero, per optimizer step."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass
class _Tally:
    """Running sums over one epoch's batches."""

    n: int = 0
    correct: int = 0
    loss: float = 0.0
    ce: float = 0.0
    kd: float = 0.0

    def add(self, logits: torch.Tensor, y: torch.Tensor, loss: float, ce: float, kd: float) -> None:
        b = len(y)
        self.n += b
        self.loss += loss * b
        self.ce += ce * b
        self.kd += kd * b
        self.correct += int((logits.argmax(1) == y).sum())


def _batch_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, opts: TrainOptions, kd: Distillation | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(logits, loss, ce, kd_term)`` of one batch."""
    logits = model(x)
    ce = F.cross_entropy(logits, y, label_smoothing=opts.label_smoothing)
    if kd is None:
        return logits, ce, ce, None
    with torch.no_grad():
        teacher_logits = kd.teacher(x)
    term = distillation_loss(logits, teacher_logits, kd.temperature)
    return logits, kd.alpha * term + (1.0 - kd.alpha) * ce, ce, term


def fit(
    model: nn.Module,
    batches: Iterable,
    epochs: int,
    opts: TrainOptions,
    device: torch.device,
    *,
    kd: Distillation | None = None,
    validate: Callable[[nn.Module], EvalResult] | None = None,
    desc: str = "train",
) -> tuple[EpochStats, ...]:
    """Run ``epochs`` epochs of ``opts`` (resolved) over ``batches``; one stats row per epoch."""
    opt = _make_optimizer(model, opts)
    try:
        steps_per_epoch = len(batches)  # type: ignore[arg-type]  # checked right here
    except TypeError:
        raise ValueError("training data must have a length (a DataLoader or a list)") from None
    if steps_per_epoch == 0:
        raise ValueError("training data is empty")
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _cosine(epochs * steps_per_epoch, round(opts.warmup_epochs * steps_per_epoch))
    )
    history: list[EpochStats] = []
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        lr_now = opt.param_groups[0]["lr"]
        tally = _Tally()
        bar = tqdm(
            batches,
            desc=f"{desc} {epoch}/{epochs}",
            disable=not opts.progress,
            unit="batch",
            mininterval=0.5 if sys.stderr.isatty() else 10.0,
            dynamic_ncols=True,
        )
        for step, (x, y) in enumerate(bar):
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            logits, loss, ce, term = _batch_loss(model, x, y, opts, kd)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"training diverged: loss {loss.item()} at epoch {epoch}, step {step + 1} "
                    f"(lr {lr_now:g}); try a lower learning rate"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if opts.after_step is not None:
                opts.after_step(model)
            tally.add(logits, y, loss.item(), ce.item(), 0.0 if term is None else term.item())
            if opts.progress:
                bar.set_postfix(
                    loss=f"{tally.loss / tally.n:.4f}",
                    acc=f"{tally.correct / tally.n:.4f}",
                    refresh=False,
                )
        bar.close()
        history.append(
            EpochStats(
                epoch=epoch,
                loss=tally.loss / tally.n,
                accuracy=tally.correct / tally.n,
                lr=lr_now,
                seconds=time.perf_counter() - start,
                ce_loss=tally.ce / tally.n,
                kd_loss=tally.kd / tally.n if kd is not None else None,
                val=validate(model) if validate is not None else None,
            )
        )
        if opts.after_epoch is not None:
            opts.after_epoch(history[-1])
    return tuple(history)
