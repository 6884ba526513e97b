"""Turn a search into a model a user ships (``prunegym export RUN_DIR``, see
:mod:`~prunegym.experiments.export_command`).

The best policy is applied physically (on a copy, with the very pruner the search's
environment used) and its batch-norm statistics are recalibrated exactly as the search's
evaluator did, so "pruned, recalibrated, before fine-tuning" on the reward split is the
figure the search scored. Then it is fine-tuned (optionally distilled from the dense
model), evaluated on the test split, timed on the CPU at batch 1 and a larger batch,
saved (state_dict + pruning history, reloadable with ``weights_only``), exported to ONNX
when the ``onnx`` extra is installed (checked against torch) and described in
``report.md`` with plots. Everything lands in ``RUN_DIR/export``, built in a temporary
folder and renamed at the end, so a failure never leaves a half-written export. The run
directory's lock is held throughout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunegym.experiments.config import Config, ConfigError, load_config
from prunegym.experiments.generalist import check_generalist_dir
from prunegym.experiments.report import write_report_files
from prunegym.experiments.rundir import (
    BASE_MODEL_FILE,
    BEST_POLICY_FILE,
    CONFIG_FILE,
    EXPORT_DIR,
    METRICS_FILE,
    SUMMARY_FILE,
    is_schedule_dir,
    read_history,
    read_json,
)
from prunegym.experiments.runlock import run_dir_lock
from prunegym.experiments.timing import compare_latency
from prunegym.experiments.workload import build_env, builder_kwargs
from prunegym.utils.files import write_json

__all__ = ["BASE_MODEL_FILE", "ExportOptions", "export_run", "fine_tune_samples"]

BUILDER = "prunegym.experiments.models:build_model"
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


@dataclass(frozen=True)
class ExportOptions:
    """How the best policy becomes a shipped model."""

    epochs: int = 5  # fine-tuning epochs (0: none)
    distill: bool = False  # knowledge distillation from the dense model
    temperature: float = 4.0
    lr: float | None = None  # None: fine_tune's default (0.01 SGD)
    batch_size: int = 128
    latency_batch: int = 64  # the "larger batch" of the latency figures
    latency_repeats: int = 30  # timed runs per round (3 rounds, dense and pruned alternating)
    threads: int | None = None  # CPU threads for latency (None: torch's current setting)
    device: str = "auto"  # where fine-tuning runs; latency is always measured on the CPU
    seed: int = 0
    train_samples: int | None = None  # fine-tune on this many train samples (seeded); None: all
    progress: bool = True


# ---------------------------------------------------------------------------- inputs
def check_run_dir(run_dir: Path) -> Config:
    """The run's saved config; one clear error when the directory cannot be exported."""
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a prunegym run directory (no {CONFIG_FILE})")
    if is_schedule_dir(run_dir):
        raise ConfigError(f"{run_dir} is a schedule's directory: prunegym export {run_dir} "
                          "(prunegym.experiments.schedule.export_schedule) exports its "
                          "final step")  # fmt: skip
    cfg = load_config(run_dir / CONFIG_FILE)
    check_generalist_dir(run_dir, cfg, "export")
    if not (run_dir / BEST_POLICY_FILE).is_file():
        raise ConfigError(
            f"{run_dir} has no best policy yet (no {BEST_POLICY_FILE}): run or resume its search"
        )
    return cfg


def load_dense(run_dir: Path, cfg: Config) -> tuple[nn.Module, Any, dict[str, Any]]:
    """The dense model the search pruned, its data splits and its model spec.

    ``RUN_DIR/base_model.pt`` when the run kept one, else ``workload.checkpoint``: a
    ``prunegym train`` file, a plain ``state_dict`` or a training checkpoint, loaded as
    the search loaded it (see :func:`~prunegym.experiments.workload.load_trained`).
    """
    from prunegym.experiments.workload import load_trained

    path = run_dir / BASE_MODEL_FILE
    if path.is_file():
        cfg = cfg.replace(**{"workload.checkpoint": str(path)})
    elif cfg.workload.checkpoint is None:
        raise ConfigError(f"{run_dir} keeps no dense model ({BASE_MODEL_FILE}) to prune")
    model, data, spec, _ = load_trained(cfg)
    return model, data, spec


def missing_onnx_package() -> str | None:
    """The first package of the ``onnx`` extra that cannot be imported (None: all can)."""
    import importlib

    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)  # the fixed ONNX_PACKAGES, never a name from a file
        except ImportError:
            return name
    return None


# ---------------------------------------------------------------------------- uniform baseline
def _uniform_policy(env: Any, round_to: int) -> dict[str, Any] | None:
    """The uniform policy of the same budget: its sparsity and each unit's kept count."""
    import numpy as np

    from prunegym.agents import uniform_sparsity  # the one bisection (on rounded counts)

    s = uniform_sparsity(env)  # always in budget: max_sparsity everywhere meets it
    table = env.unwrapped.table
    kept = table.kept_counts(np.full(len(table), s), round_to)
    return {"sparsity": s, "kept": dict(zip(table.names, kept.tolist(), strict=True))}


# ---------------------------------------------------------------------------- measuring
def _file_bytes(model: nn.Module) -> int:
    from prunegym.pruners import save_pruned

    with tempfile.TemporaryDirectory() as tmp:
        return save_pruned(model, Path(tmp) / "m.pt").stat().st_size


def _eval_dict(result: Any) -> dict[str, float]:
    return {"top1": result.top1, "top5": result.top5, "loss": result.loss,
            "samples": result.samples}  # fmt: skip


def recalibrate_as_searched(pruned: nn.Module, evaluator: Any) -> dict[str, Any]:
    """Recompute ``pruned``'s batch-norm statistics on the very calibration batches the
    search's evaluator used (when it recalibrated); returns what was done."""
    from prunegym.envs import recalibrate_batchnorm

    batches = evaluator.calibration_inputs() if evaluator.bn_recalibration else []
    if batches:
        recalibrate_batchnorm(pruned, batches)
    return {"recalibrated": bool(batches), "bn_batches": len(batches),
            "bn_batch_size": int(batches[0].shape[0]) if batches else 0}  # fmt: skip


def _before_fine_tune(pruned: nn.Module, base: Any, data: Any, device: Any) -> dict[str, Any]:
    """Recalibrate as the search did, then score on the search's slice of the reward split
    (the samples the proxy was measured on, through the evaluator's own loop) and on the
    test split."""
    from prunegym.experiments.training import evaluate

    done = recalibrate_as_searched(pruned, base.evaluator)
    reward = base.evaluator.evaluate_model(pruned, recalibrate=False, split="search")
    test = evaluate(pruned, data.loader("test", batch_size=256, shuffle=False), device=device)
    return {**done, "reward_val": {"top1": reward.accuracy, "loss": reward.loss,
                                   "samples": reward.samples},
            "test": _eval_dict(test)}  # fmt: skip


def fine_tune_samples(data: Any, opts: ExportOptions) -> int:
    """How many training samples the fine-tune reads (``opts.train_samples``, drawn with
    ``opts.seed``, or the whole train split); more than the split holds is an error."""
    size = len(data.train)
    if opts.train_samples is not None and opts.train_samples > size:
        raise ConfigError(f"train samples {opts.train_samples} exceed the {size} samples "
                          f"of {data.name}'s train split")  # fmt: skip
    return size if opts.train_samples is None else opts.train_samples


def _fine_tune(pruned: nn.Module, dense: nn.Module, data: Any, opts: ExportOptions,
               device: Any, log: Callable[[str], None]) -> float:  # fmt: skip
    from prunegym.experiments.training import fine_tune

    if opts.epochs < 1:
        return 0.0
    log(f"fine-tuning the pruned model for {opts.epochs} epoch(s) on "
        f"{fine_tune_samples(data, opts)} training samples"
        + (" with distillation" if opts.distill else ""))  # fmt: skip
    t0 = time.perf_counter()
    fine_tune(pruned, data, opts.epochs, teacher=dense if opts.distill else None,
              temperature=opts.temperature, lr=opts.lr, batch_size=opts.batch_size,
              seed=opts.seed, device=device, progress=opts.progress,
              train_samples=opts.train_samples)  # fmt: skip
    return time.perf_counter() - t0


def _search_facts(run_dir: Path, cfg: Config, policy: Any, history: list, evaluator: Any) -> dict:
    summary = read_json(run_dir / SUMMARY_FILE)
    seconds = sum(float(r.get("seconds") or 0.0) for r in history)
    meta = dict(policy.meta or {})
    return {"agent": cfg.search.agent, "episodes": len(history), "seconds": seconds,
            "seconds_per_episode": seconds / max(1, len(history)),
            "best_episode": summary.get("best_episode"),
            "best_reward": summary.get("best_reward"),
            "proxy_accuracy": meta.get("accuracy"), "proxy_samples": evaluator.samples}  # fmt: skip


# ---------------------------------------------------------------------------- writing
def _write_onnx(out: Path, pruned: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """``model.onnx`` checked against torch, or why it was skipped."""
    from prunegym import pruners

    missing = missing_onnx_package()
    if missing is not None:
        return {"skipped": f"{missing} is not installed (pip install 'prunegym[onnx]')"}
    onnx_path = pruners.export_onnx(pruned, example, out / "model.onnx")
    diff = pruners.onnx_max_abs_diff(onnx_path, pruned, torch.cat([example] * 4))
    if not diff < 1e-4:
        raise RuntimeError(f"ONNX export disagrees with torch (max abs diff {diff:.3g})")
    return {"max_abs_diff": diff, "file_bytes": onnx_path.stat().st_size}


def _write_export(run_dir: Path, pruned: nn.Module, spec: dict, example: torch.Tensor,
                  metrics: dict[str, Any], history: list, started: float) -> None:  # fmt: skip
    from prunegym.pruners import save_pruned

    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=run_dir))
    try:
        os.chmod(tmp, run_dir.stat().st_mode & 0o777)  # like the rest of the run, not 0700
        model_path = save_pruned(pruned, tmp / "model.pt", builder=BUILDER,
                                 builder_kwargs=builder_kwargs(spec),
                                 meta={"test_top1": metrics["pruned"]["top1"]})  # fmt: skip
        metrics["pruned"]["file_bytes"] = model_path.stat().st_size
        metrics["onnx"] = _write_onnx(tmp, pruned, example)
        metrics["seconds"] = time.perf_counter() - started
        write_json(tmp / METRICS_FILE, metrics)
        write_report_files(tmp, metrics, history)
        _swap_in(tmp, run_dir / EXPORT_DIR)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}-old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------- export
def _silent(message: str) -> None:
    pass


def export_run(
    run_dir: str | os.PathLike,
    options: ExportOptions | None = None,
    command: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Apply, recalibrate, fine-tune, evaluate, time, save and report the run's best policy."""
    opts = options or ExportOptions()
    if opts.epochs < 0 or opts.latency_batch < 1 or opts.latency_repeats < 1:
        raise ConfigError("epochs must be >= 0, latency batch and repeats >= 1")
    if opts.train_samples is not None and opts.train_samples < 1:
        raise ConfigError(f"train samples must be >= 1, got {opts.train_samples}")
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    with run_dir_lock(run_dir):
        return _export_locked(run_dir, opts, command, log or _silent)


def _export_locked(run_dir: Path, opts: ExportOptions, command: Sequence[str],
                   log: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    from prunegym.experiments.training import evaluate, resolve_device
    from prunegym.pruners import PruningPolicy, count_cost, count_nonzero_cost

    cfg = check_run_dir(run_dir)
    policy = PruningPolicy.from_json(run_dir / BEST_POLICY_FILE)
    dense, data, spec = load_dense(run_dir, cfg)
    fine_tune_samples(data, opts)  # a subset larger than the train split: refused now
    env = build_env(cfg, dense, data)
    base = env.unwrapped
    policy.validate(base.table)
    device = resolve_device(opts.device)
    started = time.perf_counter()
    log("applying the best policy and recalibrating as the search did")
    pruned = base.pruner.apply(policy)
    before = _before_fine_tune(pruned, base, data, device)
    dense_eval = evaluate(dense, data.loader("test", batch_size=256, shuffle=False), device=device)
    tuned_seconds = _fine_tune(pruned, dense, data, opts, device, log)
    after = evaluate(pruned, data.loader("test", batch_size=256, shuffle=False), device=device)
    pruned = pruned.to("cpu").eval()
    if policy.granularity == "weight":
        macs, params = count_nonzero_cost(pruned, base.table)
    else:
        cost = count_cost(pruned, data.example_input)
        macs, params = cost.macs, cost.params
    log("timing the dense and the pruned model on the CPU")
    dense_lat, pruned_lat = compare_latency(
        dense, pruned, data.example_input, sorted({1, opts.latency_batch}), threads=opts.threads,
        repeats=opts.latency_repeats,
    )  # fmt: skip
    kept = policy.kept(base.table)
    history = read_history(run_dir)
    metrics: dict[str, Any] = {
        "run_dir": str(run_dir),
        "command": list(command),
        "reproduce": f"prunegym export {run_dir} --epochs {opts.epochs}"
        + (" --distill" if opts.distill else "")
        + ("" if opts.train_samples is None else f" --train-samples {opts.train_samples}"),
        "options": asdict(opts),
        "model": spec,
        "dataset": data.name,
        "test_samples": dense_eval.samples,
        "budget": {"target": cfg.env.target, "ratio": cfg.env.ratio},
        "dense": {**_eval_dict(dense_eval), "macs": base.table.total_macs,
                  "params": base.table.total_params, "file_bytes": _file_bytes(dense),
                  "latency_ms": dense_lat},
        "pruned": {**_eval_dict(after), "top1_before_fine_tune": before["test"]["top1"],
                   "top5_before_fine_tune": before["test"]["top5"], "before_fine_tune": before,
                   "macs": macs, "params": params, "latency_ms": pruned_lat},
        "policy": {"granularity": policy.granularity, "importance": policy.importance,
                   "round_to": policy.round_to,
                   "units": [{"name": u.name, "channels": u.channels, "kept": kept[u.name],
                              "sparsity": policy.sparsities.get(u.name, 0.0)}
                             for u in base.table]},
        "uniform": _uniform_policy(env, policy.round_to),
        "search": _search_facts(run_dir, cfg, policy, history, base.evaluator),
        "fine_tune": {"epochs": opts.epochs, "distill": opts.distill, "seconds": tuned_seconds,
                      "device": str(device), "train_samples": fine_tune_samples(data, opts)},
        "latency_device": "cpu",
        "latency_threads": opts.threads or torch.get_num_threads(),
    }  # fmt: skip
    env.close()
    log("writing the model, ONNX, metrics, report and plots")
    _write_export(run_dir, pruned, spec, data.example_input, metrics, history, started)
    return metrics
