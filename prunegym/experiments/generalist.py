"""``search.workloads``: one RL agent trained on several workloads (models, datasets,
budgets) in turn, a generalist to transfer to models it has never seen.

Each entry of ``search.workloads`` is a mapping with ``workload`` and/or ``env``
sections (merged over the config's own) and an optional ``name``. Episode ``e`` plays
workload ``e % n`` (:mod:`prunegym.agents.generalist_search`). The run directory::

    RUN/config.yaml, run.json, checkpoint.zip, summary.json, game.json
    RUN/agent.zip, agent.json     the generalist (every workload recorded as a source)
    RUN/history.csv               every episode: episode, workload, workload_episode, ...
    RUN/workloads/<name>/         each workload's own search run directory: config.yaml,
                                  history.csv, best_policy.json, summary.json, game.json, tb/

so ``prunegym export RUN/workloads/<name>`` ships one workload's best policy,
``prunegym transfer --from RUN`` transfers the generalist, and ``prunegym search
--resume RUN`` continues the cycle where it stopped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunegym.experiments.config import Config, ConfigError, apply_overrides, flat_dict, from_dict
from prunegym.experiments.rundir import (
    AGENT_FILE,
    BASE_MODEL_FILE,
    BEST_POLICY_FILE,
    CHECKPOINT_FILE,
    HISTORY_FILE,
    SUMMARY_FILE,
    HistoryFile,
    write_config,
    write_summary,
)
from prunegym.utils.files import atomic_write_text, write_json

WORKLOADS_DIR = "workloads"
ENTRY_KEYS = ("env", "name", "workload")
#: Env keys every workload must share (the budget, importance and evaluator may differ).
SHARED_ENV_KEYS = ("granularity", "target", "preset", "min_sparsity", "max_sparsity", "round_to",
                   "reward", "reward_weights")  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_generalist(cfg: Config) -> bool:
    return bool(cfg.search.workloads)


def workload_configs(cfg: Config) -> list[tuple[str, Config]]:
    """``(name, config)`` of every entry of ``search.workloads``: the config with the
    entry's sections merged in, no ``workloads``, and its share of the episodes."""
    from prunegym.agents.factory import OFF_POLICY

    entries = cfg.search.workloads
    if len(entries) < 2:
        raise ConfigError(f"search.workloads needs at least 2 entries, got {len(entries)}")
    if cfg.search.agent not in OFF_POLICY:
        raise ConfigError(f"search.workloads trains one agent for all workloads: search.agent "
                          f"must be {', '.join(OFF_POLICY)}, not {cfg.search.agent!r}")  # fmt: skip
    if cfg.search.workers != 1:
        raise ConfigError("search.workloads plays on one process: search.workers must be 1")
    if cfg.search.episodes < len(entries):
        raise ConfigError(f"search.episodes ({cfg.search.episodes}) must be at least the "
                          f"number of workloads ({len(entries)})")  # fmt: skip
    out: list[tuple[str, Config]] = []
    for i, entry in enumerate(entries):
        where = f"search.workloads[{i}]"
        unknown = sorted(set(map(str, entry)) - set(ENTRY_KEYS))
        if unknown:
            raise ConfigError(f"unknown key {where}.{unknown[0]}; known: {', '.join(ENTRY_KEYS)}")
        share = len(range(i, cfg.search.episodes, len(entries)))  # episodes e with e % n == i
        changes: dict[str, Any] = {"search.workloads": [], "search.episodes": share}
        for section in ("workload", "env"):
            part = entry.get(section) or {}
            if not isinstance(part, dict):
                raise ConfigError(f"{where}.{section} must be a mapping")
            changes.update({f"{section}.{k}": v for k, v in flat_dict(part).items()})
        sub = from_dict(apply_overrides(cfg.to_dict(), changes))
        name = str(entry.get("name") or f"{i}-{_label(sub)}")
        if not _NAME.match(name):
            raise ConfigError(f"{where}.name {name!r} must be letters, digits, '.', '_', '-'")
        out.append((name, sub))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"search.workloads names must differ, got {names}")
    for key in SHARED_ENV_KEYS:  # what the agent's actions and rewards mean
        first = getattr(out[0][1].env, key)
        for name, sub in out[1:]:
            if getattr(sub.env, key) != first:
                raise ConfigError(f"search.workloads cannot share one agent: env.{key} is "
                                  f"{getattr(sub.env, key)!r} in {name}, {first!r} in "
                                  f"{out[0][0]}")  # fmt: skip
    return out


def _label(cfg: Config) -> str:
    w = cfg.workload
    text = Path(w.checkpoint).stem if w.checkpoint else str(w.model)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "workload"


def check_generalist_dir(run_dir: Path, cfg: Config, command: str) -> None:
    """One line when ``command`` is asked to use a generalist's top directory as one
    model's run."""
    if is_generalist(cfg):
        raise ConfigError(f"{run_dir} trained one agent on {len(cfg.search.workloads)} "
                          f"workloads: {command} one of {run_dir / WORKLOADS_DIR}/*, or "
                          f"transfer the agent: prunegym transfer --from {run_dir}")  # fmt: skip


class GeneralistHistory:
    """``history.csv`` of the top directory: every episode with its workload (the
    per-unit columns are in each workload's own ``history.csv``)."""

    def __init__(self, run_dir: Path, names: Sequence[str]) -> None:
        self.path = run_dir / HISTORY_FILE
        self.names = list(names)

    def on_safe_point(self, searcher: Any) -> None:
        self.write(searcher)

    def on_search_end(self, searcher: Any, result: Any) -> None:
        self.write(searcher)

    def write(self, searcher: Any) -> None:
        n = len(self.names)
        rows = []
        for rec in searcher.history:
            row = {"episode": rec.episode, "workload": self.names[rec.episode % n],
                   "workload_episode": rec.episode // n, "reward": rec.reward}  # fmt: skip
            row.update(rec.metrics)
            row.update({"seconds": rec.seconds, "cache_hit": int(rec.cache_hit)})
            rows.append(row)
        fields: list[str] = []
        for row in rows:
            fields += [k for k in row if k not in fields]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields or ["episode", "workload"])
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())


def _prepare_workloads(
    subs: list[tuple[str, Config]], run_dir: Path, resume: bool, log: Any
) -> list[tuple[Path, Config, Any, Any]]:
    """Each workload's directory, config, workload and env (dense models trained or
    loaded; the config and dense model written on a fresh run)."""
    from prunegym.experiments.search_run import dense_model_phase
    from prunegym.experiments.workload import save_dense

    out = []
    for name, sub in subs:
        sub_dir = run_dir / WORKLOADS_DIR / name
        sub_dir.mkdir(parents=True, exist_ok=True)
        workload, env = dense_model_phase(sub, sub_dir, resume, log, ())
        write_config(sub_dir, sub)  # also on resume: search.episodes may have grown
        if not resume and not workload.in_train_file:
            save_dense(sub_dir / BASE_MODEL_FILE, workload.model, workload.spec,
                       workload.data)  # fmt: skip
        out.append((sub_dir, sub, workload, env))
    return out


def _part_callbacks(sub_dir: Path, sub: Config) -> list[Any]:
    """A workload's own files; its TensorBoard log too (per-unit histograms need its units)."""
    from prunegym.agents import BestPolicyCallback, TensorBoardCallback
    from prunegym.agents.metadata import RunMetadataCallback
    from prunegym.experiments.rundir import workload_source

    callbacks: list[Any] = [BestPolicyCallback(sub_dir / BEST_POLICY_FILE), HistoryFile(sub_dir),
                            RunMetadataCallback(sub_dir, workload_source(sub))]  # fmt: skip
    if sub.run.tensorboard:
        callbacks.append(TensorBoardCallback(sub_dir / "tb"))
    return callbacks


def _top_callbacks(cfg: Config, run_dir: Path, subs: Sequence[tuple[str, Config]],
                   extra: Sequence[Any]) -> list[Any]:  # fmt: skip
    from prunegym.agents import CheckpointCallback, ProgressBarCallback
    from prunegym.agents.metadata import RunMetadataCallback
    from prunegym.experiments.rundir import workload_source

    callbacks: list[Any] = [CheckpointCallback(run_dir / CHECKPOINT_FILE, cfg.run.checkpoint_every),
                            GeneralistHistory(run_dir, [n for n, _ in subs])]  # fmt: skip
    callbacks.append(ProgressBarCallback(cfg.search.episodes, disable=not cfg.run.progress))
    callbacks.append(RunMetadataCallback(run_dir, [workload_source(s) for _, s in subs]))
    return [*callbacks, *extra]


def run_generalist(
    cfg: Config,
    run_dir: Path,
    *,
    command: Sequence[str] = (),
    resume: bool = False,
    extra_callbacks: Sequence[Any] = (),
    log: Any = None,
) -> Any:
    """Train (or, with ``resume``, continue) the generalist ``cfg`` describes in
    ``run_dir``; returns a :class:`~prunegym.experiments.search_run.SearchRun` whose result is
    the whole history (each workload's is in :attr:`GeneralistSearcher.results`)."""
    import torch

    from prunegym.agents.generalist_search import GeneralistSearcher, WorkloadSearch
    from prunegym.agents.multimodel import MultiModelEnv
    from prunegym.experiments.rundir import open_run_dir, write_run_info
    from prunegym.experiments.search_run import play_search
    from prunegym.experiments.workload import check_config

    log = log or (lambda message: None)
    subs = workload_configs(cfg)
    for _, sub in subs:
        check_config(sub)
    with open_run_dir(run_dir, resume):
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        prepared = _prepare_workloads(subs, run_dir, resume, log)
        try:
            multi = MultiModelEnv([env for _, _, _, env in prepared])
        except ValueError as exc:
            raise ConfigError(f"search.workloads cannot share one agent: {exc}") from None
        parts = [WorkloadSearch(env, _part_callbacks(d, s)) for d, s, _, env in prepared]
        options = dict(cfg.search.options)
        select_top = options.pop("select_top", None)
        searcher = GeneralistSearcher(multi, parts, seed=cfg.seed, algo=cfg.search.agent,
                                      **options)  # fmt: skip
        if select_top is not None:
            searcher.select_top = int(select_top)
        if resume:
            searcher.load_checkpoint(run_dir / CHECKPOINT_FILE, env=multi)
        else:
            write_config(run_dir, cfg)
        write_run_info(run_dir, command, resume, len(searcher.history))
        log(f"training a generalist {cfg.search.agent} on {len(subs)} workloads: "
            f"{cfg.search.episodes} episodes ({len(searcher.history)} done)")  # fmt: skip
        callbacks = _top_callbacks(cfg, run_dir, subs, extra_callbacks)
        run = play_search(searcher, multi, cfg.search.episodes, run_dir, callbacks)
        _write_summaries(run_dir, cfg, prepared, searcher, run.status, run.seconds)
        multi.close()
        log(f"generalist {run.status}: {len(run.result.history)} episodes in {run.seconds:.1f} s")
        return run


def _write_summaries(run_dir: Path, cfg: Config, prepared: Sequence[Any], searcher: Any,
                     status: str, seconds: float) -> None:  # fmt: skip
    """Each workload's ``summary.json`` and the top one listing them."""
    workloads = []
    for (sub_dir, sub, _, _), result in zip(prepared, searcher.results, strict=True):
        summary = write_summary(sub_dir, sub, result, status, seconds)
        workloads.append({"name": sub_dir.name, "dir": f"{WORKLOADS_DIR}/{sub_dir.name}",
                          "episodes": summary["episodes"],
                          "best_reward": summary["best_reward"],
                          "best_metrics": summary["best_metrics"]})  # fmt: skip
    write_json(run_dir / SUMMARY_FILE, {
        "status": status, "agent": cfg.search.agent, "seed": cfg.seed,
        "episodes": len(searcher.history), "episodes_requested": cfg.search.episodes,
        "agent_file": AGENT_FILE, "workloads": workloads, "seconds_this_session": seconds,
    })  # fmt: skip


def print_workloads(cfg: Config, run_dir: Path) -> None:
    """The CLI's closing lines: each workload's best policy and where it is."""
    import json

    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    print(f"generalist {cfg.search.agent}: {summary['episodes']} episodes on "
          f"{len(summary['workloads'])} workloads -> {run_dir / AGENT_FILE}")  # fmt: skip
    for w in summary["workloads"]:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in (w["best_metrics"] or {}).items())
        best = "no episode" if w["best_reward"] is None else f"best reward {w['best_reward']:.4g}"
        print(f"  {w['name']}: {w['episodes']} episodes, {best} ({metrics}) -> "
              f"{run_dir / w['dir']}")  # fmt: skip
