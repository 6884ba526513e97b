"""Iterative pruning: search, apply, fine-tune and evaluate once per budget of a schedule.

``prunegym run --config C --set run.schedule=[0.7,0.5,0.3]`` (or :func:`run_schedule`)
runs one step per budget. Step ``k`` is an ordinary ``prunegym run`` (search, apply the
best policy for real, fine-tune for ``run.epochs_per_step`` epochs, evaluate, report)
on the network step ``k - 1`` left, at the budget of the schedule's ``k``-th value of
the ORIGINAL dense cost (:mod:`~prunegym.experiments.schedule_plan` states the budget
semantics and its checks). An RL agent carries over from step to step (searcher
``transfer`` from the previous step's directory: a fresh replay buffer sized to the new
network's units, a short warm-up of ``run.step_warmup_episodes`` random episodes) unless
``run.restart_agent`` (a fresh agent, its full warm-up, at every step).

Schedule directory::

    config.yaml, run.json    the schedule's config (run.schedule set) and command lines
    schedule.json            budgets, the original cost, and each finished step's figures
    step-1-0.70/             step 1: a complete run directory (prunegym export, report
                             and run --resume work on it) plus pruned_model.pt, its
                             fine-tuned network as a checkpoint: step 2's workload
    step-2-0.50/ ...
    export/                  the result: model.pt (the last step's), metrics.json,
                             report.md (the whole path) and trajectory.png

Resume with ``prunegym run --resume OUT``: finished steps (in ``schedule.json``) are
never touched again; the interrupted step continues from its checkpoint (a step killed
before its first checkpoint starts again, one killed after its export only hands its
network over). Rerunning the first command refuses the existing directory, as every
run does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prunegym.experiments.config import Config, ConfigError, config_differences, load_config
from prunegym.experiments.export import ExportOptions, export_run, load_dense
from prunegym.experiments.pipeline import run_pipeline
from prunegym.experiments.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EXPORT_DIR,
    METRICS_FILE,
    RESUMABLE_KEYS,
    RUN_INFO_FILE,
    SCHEDULE_FILE,
    SUMMARY_FILE,
    check_writable_dir,
    is_schedule_dir,
    locked_dir,
    read_json,
    write_config,
    write_run_info,
)
from prunegym.experiments.runlock import LOCK_FILE, run_dir_lock
from prunegym.experiments.schedule_plan import (
    STEP_MODEL_FILE,
    Floor,
    budget,
    check_floor,
    check_schedule,
    floor_of,
    step_config,
    step_name,
    step_ratio,
)
from prunegym.experiments.workload import build_env, check_config, prepare_workload
from prunegym.utils.files import write_json

__all__ = ["SCHEDULE_FILE", "export_schedule", "preflight", "run_schedule"]

Log = Callable[[str], None]


def _silent(message: str) -> None:
    pass


def preflight(cfg: Config) -> Floor:
    """Every check a schedule can pass before any training: the budgets
    (:func:`~prunegym.experiments.schedule_plan.check_schedule`), the workload (model,
    classes, searcher) and each budget against the original network's rounding floor."""
    targets = check_schedule(cfg)
    first = cfg.replace(**{"env.ratio": 1.0, "run.schedule": None})
    workload = prepare_workload(first)
    env = workload.env or build_env(first, workload.model, workload.data)
    try:
        floor = floor_of(env)
    finally:
        env.close()
    check_floor(targets, floor)
    return floor


@contextlib.contextmanager
def _open_schedule_dir(out: Path, resume: bool) -> Iterator[None]:
    """Create (or reopen) the schedule directory and hold its lock; a failure before any
    step saved a checkpoint removes a directory created here."""
    with locked_dir(out, keep=lambda: any(out.glob(f"step-*/{CHECKPOINT_FILE}"))):
        if not resume and (out / SCHEDULE_FILE).exists():  # made meanwhile by another
            raise ConfigError(f"run directory {out} already exists; use --resume {out}")
        yield


def _check_target_dir(out: Path, cfg: Config, resume: bool) -> dict[str, Any]:
    """The saved state when resuming (with the same config), else ``{}`` for a new one."""
    check_writable_dir(out)
    if not resume:
        if out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
            raise ConfigError(f"run directory {out} already exists; use --resume {out} to "
                              "continue it or choose another --out")  # fmt: skip
        return {}
    if not is_schedule_dir(out):
        raise ConfigError(f"{out} is not a schedule directory (no {SCHEDULE_FILE})")
    saved = load_config(out / CONFIG_FILE)
    diff = config_differences(saved, cfg, ignore=RESUMABLE_KEYS)
    if diff:
        raise ConfigError(f"{out} was made with another config ({diff[0]} differs)")
    return json.loads((out / SCHEDULE_FILE).read_text())


def _new_state(cfg: Config, floor: Floor) -> dict[str, Any]:
    return {"format": 1, "targets": list(check_schedule(cfg)), "target": floor.kind,
            "dense_cost": floor.dense_cost, "floor_ratio": floor.ratio,
            "restart_agent": cfg.run.restart_agent,
            "step_warmup_episodes": cfg.run.step_warmup_episodes,
            "dense": None, "steps": []}  # fmt: skip


def run_schedule(
    cfg: Config,
    out_dir: str | Path,
    options: ExportOptions | None = None,
    *,
    command: Sequence[str] = (),
    resume: bool = False,
    log: Log | None = None,
    notes: Sequence[str] = (),
    extra_callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) the schedule ``cfg.run.schedule`` in
    ``out_dir``; returns the schedule's metrics (``export/metrics.json``).

    ``options`` are each step's export options (its ``epochs`` replaced by
    ``run.epochs_per_step`` when set); ``extra_callbacks`` go to every step's search.
    Raises :class:`~prunegym.experiments.pipeline.SearchInterrupted` when a step's search
    was stopped (its checkpoint saved), a :class:`ConfigError` for a schedule that
    cannot run, before any training.
    """
    log = log or _silent
    out = Path(out_dir)
    check_config(cfg)
    check_schedule(cfg)
    state = _check_target_dir(out, cfg, resume)
    floor = None if resume else preflight(cfg)
    opts = options or ExportOptions()
    if cfg.run.epochs_per_step is not None:
        opts = dataclasses.replace(opts, epochs=cfg.run.epochs_per_step)
    with _open_schedule_dir(out, resume):
        if not resume:
            assert floor is not None
            state = _new_state(cfg, floor)
            write_config(out, cfg)
            write_json(out / SCHEDULE_FILE, state)
        write_run_info(out, command, resume, len(state["steps"]))
        for index in range(len(state["steps"]) + 1, len(state["targets"]) + 1):
            step = _run_step(cfg, out, state, index, opts, command, log,
                             notes if index == 1 else (), extra_callbacks)  # fmt: skip
            state["steps"].append(step)
            write_json(out / SCHEDULE_FILE, state)
        from prunegym.experiments.schedule_report import write_schedule_export

        return write_schedule_export(out, state, command)


def export_schedule(
    out_dir: str | Path,
    options: ExportOptions | None = None,
    *,
    command: Sequence[str] = (),
    log: Log | None = None,
) -> dict[str, Any]:
    """``prunegym export SCHEDULE_DIR``: export a finished schedule's result again with
    ``options``; returns the schedule's metrics (``export/metrics.json``).

    The final step is exported again (:func:`~prunegym.experiments.export.export_run`:
    its best policy applied to the network the previous steps left, fine-tuned for
    ``options.epochs``, evaluated and timed); its hand-over model and its record in
    ``schedule.json`` follow, and the schedule's ``export/`` (the final model, metrics,
    report, trajectory) is rewritten from them. The earlier steps are not touched. An
    unfinished schedule is a one-line :class:`ConfigError` naming ``--resume``.
    """
    from prunegym.experiments.schedule_report import write_schedule_export

    out = Path(out_dir)
    if not is_schedule_dir(out):
        raise ConfigError(f"{out} is not a schedule directory (no {SCHEDULE_FILE})")
    state = json.loads((out / SCHEDULE_FILE).read_text())
    done, total = len(state["steps"]), len(state["targets"])
    if done < total:
        raise ConfigError(f"the schedule in {out} stopped after step {done} of {total}; "
                          f"finish it first: prunegym run --resume {out}")  # fmt: skip
    with run_dir_lock(out):
        last = state["steps"][-1]
        step_dir = out / last["dir"]
        step_cfg = load_config(step_dir / CONFIG_FILE)
        metrics = export_run(step_dir, options, command=command, log=log)
        (step_dir / STEP_MODEL_FILE).unlink(missing_ok=True)  # the old fine-tune's network
        index = int(last["index"])
        _hand_over(step_dir, step_cfg, metrics, index)
        state["steps"][-1] = _step_record(step_dir, step_cfg, metrics, index,
                                          float(last["target_ratio"]),
                                          float(last["step_ratio"]), state["dense"])  # fmt: skip
        write_json(out / SCHEDULE_FILE, state)
        run_command = read_json(out / RUN_INFO_FILE).get("command") or []
        return write_schedule_export(out, state, run_command, export_command=command)


def _run_step(cfg: Config, out: Path, state: dict[str, Any], index: int, opts: ExportOptions,
              command: Sequence[str], log: Log, notes: Sequence[str],
              callbacks: Sequence[Any]) -> dict[str, Any]:  # fmt: skip
    """One step: search, apply, fine-tune, evaluate, hand the network over; its record."""
    targets, kind, dense = state["targets"], state["target"], int(state["dense_cost"])
    target = float(targets[index - 1])
    step_dir = out / step_name(index, target)
    last = state["steps"][-1] if state["steps"] else None
    previous = None if last is None else out / last["dir"]
    current = dense if last is None else int(last["cost"])
    ratio = step_ratio(target, dense, current)
    step_cfg = step_config(cfg, index, ratio, step_dir, previous)
    log(f"schedule step {index}/{len(targets)}: {kind} <= {target:g} of the original network "
        f"= {ratio:.4g} of the current one, searched by {step_cfg.search.agent}")  # fmt: skip
    metrics = _search_and_export(step_cfg, step_dir, opts, command, log, notes, callbacks)
    cost = int(metrics["pruned"][kind])
    if cost > budget(target, dense):
        raise RuntimeError(f"step {index} left {kind} {cost} over its budget "
                           f"{budget(target, dense)} (internal)")  # fmt: skip
    _hand_over(step_dir, step_cfg, metrics, index)
    if state["dense"] is None:
        d = metrics["dense"]
        state["dense"] = {k: d[k] for k in ("top1", "top5", "macs", "params")}
    return _step_record(step_dir, step_cfg, metrics, index, target, ratio, state["dense"])


def _search_and_export(step_cfg: Config, step_dir: Path, opts: ExportOptions,
                       command: Sequence[str], log: Log, notes: Sequence[str],
                       callbacks: Sequence[Any]) -> dict[str, Any]:  # fmt: skip
    """The step's run, continued where it stopped: an export already made is read back,
    a checkpoint resumed, a directory without one (killed before it) started afresh."""
    metrics_path = step_dir / EXPORT_DIR / METRICS_FILE
    if metrics_path.is_file():
        return dict(json.loads(metrics_path.read_text()))
    resume = (step_dir / CHECKPOINT_FILE).is_file()
    if step_dir.exists() and not resume:
        shutil.rmtree(step_dir)  # we hold the schedule's lock: no one else writes there
    return run_pipeline(step_cfg, step_dir, opts, command=command, resume=resume, log=log,
                        notes=notes, extra_callbacks=callbacks)  # fmt: skip


def _hand_over(step_dir: Path, step_cfg: Config, metrics: dict[str, Any], index: int) -> None:
    """Save the step's fine-tuned network as the checkpoint the next step prunes."""
    from prunegym.experiments.checkpoint import save_checkpoint
    from prunegym.pruners import load_pruned

    path = step_dir / STEP_MODEL_FILE
    if path.is_file():  # written atomically: present means complete
        return
    with run_dir_lock(step_dir):
        dense, data, spec = load_dense(step_dir, step_cfg)
        pruned = load_pruned(step_dir / EXPORT_DIR / "model.pt", model=dense)
        save_checkpoint(path, pruned, model_name=spec["name"], in_channels=spec.get("in_channels"),
                        num_classes=spec.get("num_classes"), model_kwargs=spec.get("kwargs"),
                        dataset=data.describe(),
                        metrics={"test_top1": metrics["pruned"]["top1"]},
                        extra={"schedule_step": index}, pruned=True)  # fmt: skip


def _step_record(step_dir: Path, step_cfg: Config, metrics: dict[str, Any], index: int,
                 target: float, ratio: float, dense: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """What ``schedule.json`` and the report keep of a finished step."""
    kind = step_cfg.env.target
    p, search = metrics["pruned"], metrics["search"]
    best = read_json(step_dir / SUMMARY_FILE).get("best_metrics") or {}
    # the env's analytic count of the best policy: its ratio of the step network's table
    table_cost = round(best[f"{kind}_ratio"] * metrics["dense"][kind]) if best else None
    return {
        "index": index,
        "dir": step_dir.name,
        "target_ratio": target,
        "step_ratio": ratio,
        "agent": step_cfg.search.agent,
        "source": step_cfg.search.options.get("source"),
        "episodes": search["episodes"],
        "search_seconds": search["seconds"],
        "cost": int(p[kind]),
        "table_cost": table_cost,
        "macs": p["macs"],
        "params": p["params"],
        "macs_ratio": p["macs"] / dense["macs"],
        "params_ratio": p["params"] / dense["params"],
        "top1": p["top1"],
        "top5": p["top5"],
        "top1_before_fine_tune": p["top1_before_fine_tune"],
        "fine_tune_epochs": metrics["fine_tune"]["epochs"],
        "fine_tune_seconds": metrics["fine_tune"]["seconds"],
        "model": f"{step_dir.name}/{EXPORT_DIR}/model.pt",
    }  # fmt: skip
