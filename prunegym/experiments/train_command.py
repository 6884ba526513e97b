"""``prunegym train``: train a model on a dataset; writes ``model.pt`` and ``metrics.json``.

The model is a zoo name, ``tv:<name>`` or your own ``package.module:function`` (with
``--model-kwarg KEY=VALUE``); the dataset a registered name or your own
``package.module:function`` (with ``--dataset-option KEY=VALUE``, e.g. ``image_size=32``
and ``channels=3`` to fit Fashion-MNIST to a 3x32x32 model). After the first epoch it
says how long the rest should take.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from prunegym.experiments.arguments import non_negative_float, positive_int
from prunegym.experiments.commands import Command, print_phase
from prunegym.experiments.config import ConfigError, parse_yaml
from prunegym.utils.files import write_json


def key_value(text: str) -> tuple[str, Any]:
    """argparse type: ``KEY=VALUE`` with the value read as YAML (``width=0.5``, ``mean=[0.5]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), parse_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"the value of {text!r} is not valid YAML") from None


def duration(seconds: float) -> str:
    """``"8.5 s"``, ``"150 s"``, ``"35 min"``, ``"2.5 h"``: a span of time, rounded to read."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 600:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def remaining_time_note(epochs: int, log: Callable[[str], None]) -> Callable[[Any], None]:
    """An ``after_epoch`` hook that logs, after the first of ``epochs`` epochs, how long
    it took and about how long the others will take."""

    def note(stats: Any) -> None:
        if stats.epoch == 1 and epochs > 1:
            log(f"epoch 1/{epochs} took {duration(stats.seconds)}; "
                f"about {duration(stats.seconds * (epochs - 1))} to go")  # fmt: skip

    return note


def _configure_train(p: argparse.ArgumentParser) -> None:
    from prunegym.experiments.data import dataset_names
    from prunegym.experiments.models import model_names

    p.add_argument("--model", required=True, help=f"model: {', '.join(model_names())}")
    p.add_argument(
        "--model-kwarg", dest="model_kwargs", action="append", type=key_value, default=[],
        metavar="KEY=VALUE", help="a keyword of the model's builder (repeatable), e.g. width=0.5",
    )  # fmt: skip
    p.add_argument(
        "--dataset", default="digits",
        help=f"dataset: {', '.join(dataset_names())} or package.module:function",
    )  # fmt: skip
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=10,
        help="training epochs (15 on Fashion-MNIST: 30 min to hours on 2 CPU cores)",
    )
    p.add_argument("--out", required=True, type=Path, help="run directory for model.pt + metrics")
    p.add_argument("--force", action="store_true", help="overwrite a checkpoint already in --out")
    g = p.add_argument_group("data")
    g.add_argument(
        "--data-dir",
        type=Path,
        help="dataset directory (default: $PRUNEGYM_DATA, then the system location)",
    )
    g.add_argument("--download", action="store_true", help="cifar10 only: download into --data-dir")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the reward_val split")
    g.add_argument(
        "--reward-val-size",
        type=positive_int,
        help="samples held out of train for the search's reward "
        "(default: 10%% of train, at most 5000)",
    )
    g.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    g.add_argument("--image-size", type=positive_int,
                   help="image side in pixels (padded or resized to it)")  # fmt: skip
    g.add_argument("--channels", type=int, choices=(1, 3), help="image channels (1 <-> 3)")
    g.add_argument(
        "--dataset-option", dest="dataset_options", action="append", type=key_value, default=[],
        metavar="KEY=VALUE",
        help="a dataset option (repeatable): resize=bilinear, mean=[0.5], or a keyword of "
        "your dataset function",
    )  # fmt: skip
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="optimizer")
    g.add_argument("--lr", type=float, help="peak learning rate (default: sgd 0.1, adamw 1e-3)")
    g.add_argument("--batch-size", type=positive_int, default=128, help="batch size")
    g.add_argument("--momentum", type=non_negative_float, default=0.9, help="sgd momentum")
    g.add_argument(
        "--weight-decay",
        type=non_negative_float,
        help="weight decay (default: sgd 5e-4, adamw 0.05)",
    )
    g.add_argument(
        "--label-smoothing", type=non_negative_float, default=0.0, help="label smoothing"
    )
    g.add_argument(
        "--warmup-epochs", type=non_negative_float, default=0.0, help="linear warm-up epochs"
    )
    g.add_argument("--seed", type=int, default=0, help="seed of init, shuffling, augmentation")
    g = p.add_argument_group("execution")
    g.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")
    g.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    g.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def _prepare_out(out: Path, force: bool) -> bool:
    """Make sure ``out`` is a writable directory; returns whether it was created here."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    if (out / "model.pt").exists() and not force:
        raise ValueError(f"{out} already holds model.pt; pass --force to overwrite it")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return created


def _dataset_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--dataset-option`` pairs plus the options the dedicated flags set."""
    options = dict(args.dataset_options)
    flags = (("--no-augment", "augment", False if args.no_augment else None),
             ("--image-size", "image_size", args.image_size),
             ("--channels", "channels", args.channels))  # fmt: skip
    for flag, key, value in flags:
        if value is not None:
            if key in options and options[key] != value:
                raise ConfigError(f"--dataset-option {key}={options[key]} contradicts {flag}")
            options[key] = value
    return options


def _run_train(args: argparse.Namespace) -> int:
    import torch

    from prunegym.experiments.checkpoint import prunegym_version
    from prunegym.experiments.data import build_data
    from prunegym.experiments.models import check_model_name
    from prunegym.experiments.training import evaluate, resolve_device, train
    from prunegym.experiments.workload import build_model_for, save_dense

    check_model_name(args.model)
    device = resolve_device(args.device)
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = build_data(
        args.dataset, args.reward_val_size, args.split_seed, args.data_dir,
        download=args.download, **_dataset_options(args),
    )  # fmt: skip
    created = _prepare_out(args.out, args.force)
    progress = not args.no_progress
    try:
        torch.manual_seed(args.seed)
        model, spec = build_model_for(args.model, data, dict(args.model_kwargs))
        start = time.perf_counter()
        result = train(
            model, data, args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
            lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
            label_smoothing=args.label_smoothing, warmup_epochs=args.warmup_epochs,
            seed=args.seed, device=device, progress=progress, num_workers=args.workers,
            after_epoch=remaining_time_note(args.epochs, print_phase),
        )  # fmt: skip
        test = evaluate(model, data.loader("test", 512), device=device, progress=progress)
        wall = time.perf_counter() - start
    except BaseException:
        if created and not any(args.out.iterdir()):
            args.out.rmdir()  # nothing half-written: no empty run directory either
        raise
    metrics = {
        "test": test.as_dict(),
        "train_final": {"loss": result.final.loss, "accuracy": result.final.accuracy},
        "epochs": args.epochs,
        "wall_seconds": wall,
        "train_seconds": result.seconds,
        "device": result.device,
        "threads": torch.get_num_threads(),
    }
    command = list(args.argv)
    ckpt = save_dense(args.out / "model.pt", model, spec, data, metrics=metrics,
                      extra={"train_config": result.config, "command": command})  # fmt: skip
    write_json(
        args.out / "metrics.json",
        {
            "model": spec,
            "dataset": data.describe(),
            **metrics,
            "train": result.as_dict(),
            "command": command,
            "checkpoint": ckpt.name,
            "prunegym_version": prunegym_version(),
            "torch_version": str(torch.__version__),
            "cpu_count": os.cpu_count(),
        },
        allow_nan=False,  # strict JSON, like the checkpoint's metadata
    )
    minutes, seconds = divmod(wall, 60)
    print(
        f"{args.model} on {data.name}: {args.epochs} epochs in {int(minutes)}m{seconds:04.1f}s "
        f"on {result.device}, test top-1 {test.top1:.2%} top-5 {test.top5:.2%} "
        f"loss {test.loss:.4f} -> {ckpt}"
    )
    return 0


COMMAND = Command(
    name="train",
    help="train a model (zoo, tv:NAME or package.module:function) on a dataset; writes "
    "model.pt and metrics.json to --out",
    configure=_configure_train,
    run=_run_train,
)
