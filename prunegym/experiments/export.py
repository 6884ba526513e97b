"""``prunegym export RUN_DIR``: turn a search into a model a user ships.

The best policy is applied physically (on a copy, with the very pruner the search's
environment used), fine-tuned (optionally distilled from the dense model), evaluated on
the test split, timed on the CPU at batch 1 and a larger batch, saved (state_dict +
pruning history, reloadable with ``weights_only``), exported to ONNX (checked against
torch) and described in ``report.md`` with plots. Everything lands in ``RUN_DIR/export``,
built in a temporary folder and renamed at the end, so a failure never leaves a
half-written export.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunegym.experiments.cli import Command
from prunegym.experiments.config import Config, ConfigError, load_config
from prunegym.experiments.search import BASE_MODEL_FILE

EXPORT_DIR = "export"
METRICS_FILE = "metrics.json"
BUILDER = "prunegym.experiments.models:build_model"


@dataclass(frozen=True)
class ExportOptions:
    """How the best policy becomes a shipped model."""

    epochs: int = 5  # fine-tuning epochs (0: none)
    distill: bool = False  # knowledge distillation from the dense model
    temperature: float = 4.0
    lr: float | None = None  # None: fine_tune's default (0.01 SGD)
    batch_size: int = 128
    latency_batch: int = 64  # the "larger batch" of the latency figures
    latency_repeats: int = 30
    threads: int | None = None  # CPU threads for latency (None: torch's current setting)
    device: str = "auto"  # where fine-tuning runs; latency is always measured on the CPU
    seed: int = 0
    progress: bool = True


# ---------------------------------------------------------------------------- inputs
def check_run_dir(run_dir: Path) -> Config:
    """The run's saved config; one clear error when the directory cannot be exported."""
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a prunegym run directory (no config.yaml)")
    if not (run_dir / "best_policy.json").is_file():
        raise ConfigError(
            f"{run_dir} has no best policy yet (no best_policy.json): run or resume its search"
        )
    return load_config(run_dir / "config.yaml")


def load_dense(run_dir: Path, cfg: Config) -> tuple[nn.Module, Any, dict[str, Any]]:
    """The dense model the search pruned, its data splits and its model spec."""
    from prunegym.experiments.checkpoint import load_checkpoint
    from prunegym.experiments.data import build_data_like

    path = run_dir / BASE_MODEL_FILE
    if not path.is_file():
        if cfg.workload.checkpoint is None:
            raise ConfigError(f"{run_dir} keeps no dense model ({BASE_MODEL_FILE}) to prune")
        path = Path(cfg.workload.checkpoint)
    ckpt = load_checkpoint(path)
    data = build_data_like(ckpt.metadata["dataset"], cfg.workload.data_dir)
    return ckpt.build_model(), data, ckpt.model_spec


def read_history(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    return list(csv.DictReader(io.StringIO(path.read_text())))


# ---------------------------------------------------------------------------- measuring
def _file_bytes(model: nn.Module) -> int:
    from prunegym.pruners import save_pruned

    with tempfile.TemporaryDirectory() as tmp:
        return save_pruned(model, Path(tmp) / "m.pt").stat().st_size


def _latency(model: nn.Module, example: torch.Tensor, batches: Sequence[int],
             opts: ExportOptions) -> dict[str, dict[str, Any]]:  # fmt: skip
    from prunegym.pruners import measure_latency

    cpu_model = model.to("cpu").eval()
    out = {}
    for b in batches:
        x = example[:1].to("cpu").repeat(b, *[1] * (example.dim() - 1))
        lat = measure_latency(cpu_model, x, threads=opts.threads, warmup=5,
                              repeats=opts.latency_repeats)  # fmt: skip
        out[str(b)] = lat.as_dict()
    return out


def uniform_sparsity(env: Any, tol: float = 1e-4) -> float | None:
    """The smallest single sparsity for every unit that meets the env's budget."""
    base = env.unwrapped
    if not hasattr(base, "cost_ratio"):
        return None
    n = base.n_units
    lo, hi = float(base.min_sparsity), float(base.max_sparsity)
    if base.cost_ratio([hi] * n) > base.target_ratio:
        return None
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if base.cost_ratio([mid] * n) <= base.target_ratio else (mid, hi)
    return hi


def _uniform_policy(env: Any, round_to: int) -> dict[str, Any] | None:
    """The uniform policy of the same budget: its sparsity and each unit's kept count."""
    import numpy as np

    s = uniform_sparsity(env)
    if s is None:
        return None
    table = env.unwrapped.table
    kept = table.kept_counts(np.full(len(table), s), round_to)
    return {"sparsity": s, "kept": dict(zip(table.names, kept.tolist(), strict=True))}


def export_run(
    run_dir: str | os.PathLike, options: ExportOptions | None = None, command: Sequence[str] = ()
) -> dict[str, Any]:
    """Apply, fine-tune, evaluate, time, save and report the run's best policy."""
    from prunegym.experiments.search import build_env
    from prunegym.experiments.training import evaluate, fine_tune, resolve_device
    from prunegym.pruners import (
        PruningPolicy,
        count_cost,
        count_nonzero_cost,
        export_onnx,
        onnx_max_abs_diff,
        save_pruned,
    )

    opts = options or ExportOptions()
    if opts.epochs < 0 or opts.latency_batch < 1 or opts.latency_repeats < 1:
        raise ConfigError("epochs must be >= 0, latency batch and repeats >= 1")
    run_dir = Path(run_dir)
    cfg = check_run_dir(run_dir)
    policy = PruningPolicy.from_json(run_dir / "best_policy.json")
    dense, data, spec = load_dense(run_dir, cfg)
    env = build_env(cfg, dense, data)
    base = env.unwrapped
    policy.validate(base.table)
    pruned = base.pruner.apply(policy)
    example = data.example_input
    test = data.loader("test", batch_size=256, shuffle=False)
    device = resolve_device(opts.device)

    started = time.perf_counter()
    dense_eval = evaluate(dense, test, device=device)
    before = evaluate(pruned, test, device=device)
    tuned_seconds = 0.0
    if opts.epochs > 0:
        t0 = time.perf_counter()
        fine_tune(pruned, data, opts.epochs, teacher=dense if opts.distill else None,
                  temperature=opts.temperature, lr=opts.lr, batch_size=opts.batch_size,
                  seed=opts.seed, device=device, progress=opts.progress)  # fmt: skip
        tuned_seconds = time.perf_counter() - t0
    pruned = pruned.to("cpu").eval()
    after = evaluate(pruned, test, device=device)
    pruned = pruned.to("cpu").eval()
    if policy.granularity == "weight":
        macs, params = count_nonzero_cost(pruned, base.table)
    else:
        cost = count_cost(pruned, example)
        macs, params = cost.macs, cost.params
    batches = sorted({1, opts.latency_batch})
    kept = policy.kept(base.table)
    history = read_history(run_dir)
    summary = _read_json(run_dir / "summary.json")
    search_seconds = sum(float(r.get("seconds") or 0.0) for r in history)
    metrics: dict[str, Any] = {
        "run_dir": str(run_dir),
        "command": list(command),
        "reproduce": f"prunegym export {run_dir} --epochs {opts.epochs}"
        + (" --distill" if opts.distill else ""),
        "options": asdict(opts),
        "model": spec,
        "dataset": data.name,
        "test_samples": dense_eval.samples,
        "budget": {"target": cfg.env.target, "ratio": cfg.env.ratio},
        "dense": {**_eval_dict(dense_eval), "macs": base.table.total_macs,
                  "params": base.table.total_params, "file_bytes": _file_bytes(dense),
                  "latency_ms": _latency(dense, example, batches, opts)},
        "pruned": {**_eval_dict(after), "top1_before_fine_tune": before.top1,
                   "top5_before_fine_tune": before.top5, "macs": macs, "params": params,
                   "latency_ms": _latency(pruned, example, batches, opts)},
        "policy": {"granularity": policy.granularity, "importance": policy.importance,
                   "round_to": policy.round_to,
                   "units": [{"name": u.name, "channels": u.channels, "kept": kept[u.name],
                              "sparsity": policy.sparsities.get(u.name, 0.0)}
                             for u in base.table]},
        "uniform": _uniform_policy(env, policy.round_to),
        "search": {"agent": cfg.search.agent, "episodes": len(history),
                   "seconds": search_seconds,
                   "seconds_per_episode": search_seconds / max(1, len(history)),
                   "best_episode": summary.get("best_episode"),
                   "best_reward": summary.get("best_reward")},
        "fine_tune": {"epochs": opts.epochs, "distill": opts.distill, "seconds": tuned_seconds,
                      "device": str(device)},
        "latency_device": "cpu",
        "latency_threads": opts.threads or torch.get_num_threads(),
    }  # fmt: skip
    env.close()

    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=run_dir))
    try:
        model_path = save_pruned(pruned, tmp / "model.pt", builder=BUILDER,
                                 builder_kwargs=spec, meta={"test_top1": after.top1})  # fmt: skip
        metrics["pruned"]["file_bytes"] = model_path.stat().st_size
        onnx_path = export_onnx(pruned, example, tmp / "model.onnx")
        probe = torch.cat([example] * 4)
        diff = onnx_max_abs_diff(onnx_path, pruned, probe)
        if not diff < 1e-4:
            raise RuntimeError(f"ONNX export disagrees with torch (max abs diff {diff:.3g})")
        metrics["onnx"] = {"max_abs_diff": diff, "file_bytes": onnx_path.stat().st_size}
        metrics["seconds"] = time.perf_counter() - started
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=str) + "\n")
        write_report_files(tmp, metrics, history)
        _swap_in(tmp, run_dir / EXPORT_DIR)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metrics


def write_report_files(out: Path, metrics: dict[str, Any], history: list[dict[str, str]]) -> None:
    """report.md and the PNG plots in ``out`` (from measured metrics and history only)."""
    from prunegym.experiments import plots
    from prunegym.experiments.report import render_report

    units = [u["name"] for u in metrics["policy"]["units"]]
    if history:
        plots.plot_reward_curve(history, out / "reward.png",
                                title=f"{metrics['search']['agent']} search")  # fmt: skip
        target = metrics["budget"]["target"]
        metric = f"{target}_ratio" if f"{target}_ratio" in history[0] else "macs_ratio"
        plots.plot_candidates(history, metrics["budget"]["ratio"] if metric.startswith(target)
                              else None, out / "candidates.png", metric=metric)  # fmt: skip
    real = [1 - u["kept"] / u["channels"] for u in metrics["policy"]["units"]]
    uniform = metrics.get("uniform")
    base = None
    if uniform is not None:
        base = [1 - uniform["kept"][u["name"]] / u["channels"] for u in metrics["policy"]["units"]]
    plots.plot_policy(units, real, base, out / "policy.png")
    from prunegym.utils.files import atomic_write_text

    atomic_write_text(out / "report.md", render_report(metrics, has_history=bool(history)))


def _swap_in(tmp: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}-old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _eval_dict(result: Any) -> dict[str, float]:
    return {"top1": result.top1, "top5": result.top5, "loss": result.loss}


def _read_json(path: Path) -> dict[str, Any]:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return json.loads(path.read_text())
    return {}


# ---------------------------------------------------------------------------- the CLI
def add_export_arguments(p: argparse.ArgumentParser, progress_flag: bool = True) -> None:
    d = ExportOptions()
    p.add_argument("--epochs", type=int, default=d.epochs, help="fine-tuning epochs (0: none)")
    p.add_argument("--distill", action="store_true", help="distil from the dense model")
    p.add_argument("--temperature", type=float, default=d.temperature, help="distillation T")
    p.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate")
    p.add_argument(
        "--latency-batch",
        type=int,
        default=d.latency_batch,
        help="the larger batch size of the latency figures (batch 1 is always timed)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for latency")
    p.add_argument("--device", default=d.device, help="fine-tuning device: auto, cpu, cuda")
    if progress_flag:
        p.add_argument("--no-progress", action="store_true", help="no progress bars")


def export_options(args: argparse.Namespace) -> ExportOptions:
    if args.epochs < 0:
        raise ConfigError(f"--epochs must be >= 0, got {args.epochs}")
    if args.latency_batch < 1 or (args.threads is not None and args.threads < 1):
        raise ConfigError("--latency-batch and --threads must be >= 1")
    return ExportOptions(epochs=args.epochs, distill=args.distill, temperature=args.temperature,
                         lr=args.lr, latency_batch=args.latency_batch, threads=args.threads,
                         device=args.device, progress=not args.no_progress)  # fmt: skip


def print_summary(metrics: dict[str, Any], run_dir: Path) -> None:
    from prunegym.experiments.report import summary_table

    print(summary_table(metrics))
    out = run_dir / EXPORT_DIR
    print(f"\nrun directory: {run_dir}")
    print(f"report:        {out / 'report.md'}")
    print(f"plots:         {out / 'reward.png'}, {out / 'policy.png'}, {out / 'candidates.png'}")
    print(f"model:         {out / 'model.pt'} (prunegym.load_pruned), {out / 'model.onnx'}")
    print(f"TensorBoard:   tensorboard --logdir {run_dir / 'tb'}")


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory written by prunegym search")
    add_export_arguments(p)


def _run(args: argparse.Namespace) -> int:
    opts = export_options(args)
    metrics = export_run(args.run_dir, opts, command=getattr(args, "argv", sys.argv))
    print_summary(metrics, args.run_dir)
    return 0


EXPORT = Command(
    name="export",
    help="apply a run's best policy for real, fine-tune, evaluate, time, save, ONNX, report",
    configure=_configure,
    run=_run,
)
