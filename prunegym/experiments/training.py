"""Train a base model, evaluate it, fine-tune a pruned one (optionally distilling the dense one).

``train`` and ``fine_tune`` change the model's weights and nothing else: it goes back to
the device and train/eval mode it came with. ``evaluate`` changes nothing at all. Runs
are seeded inside ``torch.random.fork_rng``, so the caller's global RNG is left alone and
the same seed gives the same weights (on CPU; CUDA kernels may differ in the last bits).
Every setting of a run is one :class:`TrainOptions`; keywords override its fields.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from tqdm.auto import tqdm

from prunegym.experiments.fitting import (
    OPTIMIZERS,
    Distillation,
    EpochStats,
    EvalResult,
    TrainingDiverged,
    TrainOptions,
    distillation_loss,
    fit,
)

if TYPE_CHECKING:
    from prunegym.experiments.data import DataSplits

__all__ = [
    "OPTIMIZERS",
    "EpochStats",
    "EvalResult",
    "TrainOptions",
    "TrainResult",
    "TrainingDiverged",
    "distillation_loss",
    "evaluate",
    "fine_tune",
    "resolve_device",
    "train",
]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
_TRAIN_LR = {"sgd": 0.1, "adamw": 1e-3}
_FINE_TUNE_LR = {"sgd": 0.01, "adamw": 1e-4}


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
    tensor: torch.Tensor | None = next(model.parameters(), None)
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


def _train_loader(data: DataSplits | Iterable, opts: TrainOptions, pin: bool) -> Iterable:
    if hasattr(data, "loader") and hasattr(data, "train"):
        splits: Any = data
        if opts.train_samples is not None:
            splits = splits.train_subset(opts.train_samples, opts.seed)
        return splits.loader(
            "train", opts.batch_size, shuffle=True, seed=opts.seed,
            num_workers=opts.num_workers, pin_memory=pin,
        )  # fmt: skip
    if opts.train_samples is not None:
        raise ValueError("train_samples needs data splits (a DataSplits), not batches")
    return data


# ----------------------------------------------------------------------------- the run


def _run(
    model: nn.Module,
    data: DataSplits | Iterable,
    epochs: int,
    opts: TrainOptions,
    *,
    kind: str,
    kd: Distillation | None = None,
) -> TrainResult:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    dev = resolve_device(opts.device)
    config = {"kind": kind, "epochs": epochs, **opts.record()}
    if kd is not None:
        config.update(teacher=True, temperature=kd.temperature, alpha=kd.alpha)
    val = opts.val
    validate = (lambda m: evaluate(m, val, device=dev)) if val is not None else None
    home, was_training = _model_device(model), model.training
    teacher_training = kd.teacher.training if kd is not None else None
    start = time.perf_counter()
    with _fork_rng(dev):
        torch.manual_seed(opts.seed)
        batches = _train_loader(data, opts, dev.type == "cuda")
        try:
            model.to(dev)
            if kd is not None:
                kd = Distillation(_on_device(kd.teacher, dev).eval(), kd.temperature, kd.alpha)
            history = fit(model, batches, epochs, opts, dev, kd=kd, validate=validate, desc=kind)
        finally:
            model.to(home)
            model.train(was_training)
            if kd is not None and teacher_training is not None:
                kd.teacher.train(teacher_training)
    return TrainResult(history, time.perf_counter() - start, str(dev), config)


# ----------------------------------------------------------------------------- public API


def train(
    model: nn.Module,
    data: DataSplits | Iterable,
    epochs: int,
    options: TrainOptions | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train ``model`` in place on ``data.train`` (or any sized iterable of ``(x, y)`` batches).

    ``options`` (default :class:`TrainOptions`) with any of its fields overridden by
    keyword: ``train(model, data, 10, lr=0.05, batch_size=64)``. SGD (Nesterov momentum
    0.9, lr 0.1, weight decay 5e-4) or AdamW (lr 1e-3, weight decay 0.05), cosine
    schedule per step with optional linear warm-up.
    """
    opts = _options(options, overrides, "train").resolved(_TRAIN_LR)
    return _run(model, data, epochs, opts, kind="train")


def fine_tune(
    pruned: nn.Module,
    data: DataSplits | Iterable,
    epochs: int,
    teacher: nn.Module | None = None,
    temperature: float = 4.0,
    alpha: float = 0.9,
    *,
    options: TrainOptions | None = None,
    **overrides: Any,
) -> TrainResult:
    """Fine-tune a pruned model in place; with ``teacher``, distil from it (Hinton et al.).

    The loss is ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE`` with
    ``T = temperature``; the teacher runs in eval mode under no_grad and is not changed.
    Options as ``train`` but a 10x smaller default learning rate (0.01 SGD, 1e-4 AdamW).
    """
    kd = Distillation(teacher, temperature, alpha) if teacher is not None else None
    opts = _options(options, overrides, "fine_tune").resolved(_FINE_TUNE_LR)
    return _run(pruned, data, epochs, opts, kind="fine-tune", kd=kd)


def _options(
    options: TrainOptions | None, overrides: Mapping[str, Any], caller: str
) -> TrainOptions:
    if options is not None and not isinstance(options, TrainOptions):
        raise TypeError(f"{caller}() options must be a TrainOptions, got {type(options).__name__}")
    return (options or TrainOptions()).updated(overrides, caller)


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
