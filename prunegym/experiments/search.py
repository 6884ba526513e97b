"""``prunegym search``: run a searcher on a workload and keep everything in a run directory.

The run directory's files are described in :mod:`prunegym.experiments.rundir`. The run
holds the directory's lock from its first step (see :mod:`~prunegym.experiments.runlock`)
and checks the whole setup (output directory, model, classes, trace, budget, searcher
options) before it trains or evaluates anything. ``--resume RUN_DIR`` continues from
``checkpoint.zip`` with the saved config and loses no completed episode; Ctrl-C or
SIGTERM stops at the next episode boundary, saves a checkpoint and exits with status
130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prunegym.experiments.arguments import (
    TRUSTED_SOURCE_NOTE,
    add_search_arguments,
    resolve_search_config,
)
from prunegym.experiments.commands import Command, print_phase
from prunegym.experiments.config import Config, ConfigError, flat_dict
from prunegym.experiments.rundir import (
    BASE_MODEL_FILE,
    BEST_POLICY_FILE,
    CHECKPOINT_FILE,
    HistoryFile,
    TransferFileCallback,
    open_run_dir,
    transfer_mode,
    workload_source,
    write_config,
    write_run_info,
    write_summary,
)
from prunegym.experiments.schedule_plan import refuse_schedule
from prunegym.experiments.search_run import Log, SearchRun, dense_model_phase, play_search
from prunegym.experiments.signals import exit_status
from prunegym.experiments.workload import (
    build_env,
    build_workload,
    check_config,
    save_dense,
)

__all__ = ["COMMAND", "SearchRun", "build_env", "build_workload", "run_search"]


def _silent(message: str) -> None:
    pass


def _callbacks(cfg: Config, run_dir: Path, extra: Sequence[Any]) -> list[Any]:
    from prunegym.agents import (
        BestPolicyCallback,
        CheckpointCallback,
        ProgressBarCallback,
        TensorBoardCallback,
    )
    from prunegym.agents.metadata import RunMetadataCallback
    from prunegym.agents.searchers import SOURCED

    callbacks: list[Any] = [
        BestPolicyCallback(run_dir / BEST_POLICY_FILE),
        CheckpointCallback(run_dir / CHECKPOINT_FILE, cfg.run.checkpoint_every),
        HistoryFile(run_dir),
    ]
    if cfg.run.tensorboard:
        hparams = {k: v for k, v in flat_dict(cfg.to_dict()).items()
                   if isinstance(v, int | float | str | bool)}  # fmt: skip
        callbacks.append(TensorBoardCallback(run_dir / "tb", hparams=hparams))
    callbacks.append(ProgressBarCallback(cfg.search.episodes, disable=not cfg.run.progress))
    callbacks.append(RunMetadataCallback(run_dir, workload_source(cfg)))  # agent.json, game.json
    if cfg.search.agent in SOURCED:  # also on --resume, so transfer.json counts every episode
        source = Path(cfg.search.options["source"])
        callbacks.append(TransferFileCallback(run_dir, source, transfer_mode(cfg.search.agent)))
    callbacks.extend(extra)
    return callbacks


def check_workers(cfg: Config) -> None:
    """``search.workers`` / ``search.batch_size`` errors, found before anything starts."""
    from prunegym.agents import BASELINES
    from prunegym.agents.factory import OFF_POLICY

    s = cfg.search
    for key, value in (("workers", s.workers), ("batch_size", s.batch_size)):
        if value < 1:
            raise ConfigError(f"search.{key} must be >= 1, got {value}")
    batching = hasattr(BASELINES.get(s.agent), "use_workers")
    if s.batch_size > 1 and not batching:
        raise ConfigError(f"search.batch_size > 1 needs a searcher that proposes batches "
                          f"(random, random-raw, evolution, cmaes), not {s.agent!r}")  # fmt: skip
    if s.workers > 1 and not batching and s.agent not in OFF_POLICY:
        raise ConfigError(f"search.workers > 1 needs a searcher that evaluates batches "
                          f"(random, random-raw, evolution, cmaes) or an off-policy agent "
                          f"({', '.join(OFF_POLICY)}), not {s.agent!r}")  # fmt: skip
    freq = s.options.get("train_freq")
    if s.workers > 1 and freq is not None and not (isinstance(freq, list | tuple)
                                                   and list(freq)[1:] == ["episode"]):  # fmt: skip
        raise ConfigError("with search.workers > 1 search.options.train_freq counts episodes: "
                          f"give it as [n, episode], not {freq!r}")  # fmt: skip
    d = cfg.distributed
    if d.threads_per_worker is not None and d.threads_per_worker < 1:
        raise ConfigError(f"distributed.threads_per_worker must be >= 1, got "
                          f"{d.threads_per_worker}")  # fmt: skip
    for key in ("max_restarts", "max_task_retries"):
        if getattr(d, key) < 0:
            raise ConfigError(f"distributed.{key} must be >= 0, got {getattr(d, key)}")


@contextlib.contextmanager
def ray_session(cfg: Config) -> Iterator[None]:
    """Connect to Ray for ``search.workers > 1`` (nothing, and no Ray import, for 1); an
    unreachable address fails here, before anything is built or written. A local
    instance started here is shut down at the end."""
    if cfg.search.workers == 1:
        yield
        return
    import ray

    from prunegym.agents.ray_cluster import check_resources, init_ray

    try:
        check_resources(cfg.distributed.resources_per_worker)
    except ValueError as exc:
        raise ConfigError(f"distributed.{exc}") from None
    started = not ray.is_initialized()
    d = cfg.distributed
    init_ray(d.address, cfg.search.workers, d.resources_per_worker)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


@contextlib.contextmanager
def workers(cfg: Config, workload: Any) -> Iterator[Any]:
    """The Ray workers of ``search.workers > 1``, each with the env of ``cfg`` on the
    workload's model and data (a picklable factory, put in Ray's store once): a
    :class:`~prunegym.agents.worker_pool.WorkerPool` for the black-box searchers, a
    :class:`~prunegym.agents.ray_vec_env.RayVecEnv` for an RL agent; None for 1."""
    if cfg.search.workers == 1:
        yield None
        return
    from prunegym.agents import BASELINES

    d = cfg.distributed
    env_fn = functools.partial(build_env, cfg, workload.model, workload.data)
    options: dict[str, Any] = {
        "threads_per_worker": d.threads_per_worker, "max_restarts": d.max_restarts,
        "resources_per_worker": d.resources_per_worker, "max_task_retries": d.max_task_retries,
    }  # fmt: skip
    if cfg.search.agent in BASELINES:
        from prunegym.agents.worker_pool import WorkerPool

        with WorkerPool(env_fn, cfg.search.workers, **options) as pool:
            yield pool
        return
    from prunegym.agents.ray_vec_env import RayVecEnv

    venv = RayVecEnv([env_fn] * cfg.search.workers, **options)
    try:
        yield venv
    finally:
        venv.close()


def _use_workers(searcher: Any, cfg: Config, found: Any) -> None:
    """Hand the workers to the searcher (a batch searcher's pool, an agent's envs)."""
    if hasattr(searcher, "use_workers"):
        searcher.use_workers(found, cfg.search.batch_size)
    elif found is not None:
        searcher.use_envs(found)


def run_search(
    cfg: Config,
    run_dir: str | os.PathLike,
    *,
    command: Sequence[str] = (),
    resume: bool = False,
    extra_callbacks: Sequence[Any] = (),
    log: Log | None = None,
    notes: Sequence[str] = (),
) -> SearchRun:
    """Run (or, with ``resume``, continue) the search ``cfg`` describes in ``run_dir``.

    ``log`` receives one line per phase (training, searching) once every check passed,
    preceded by ``notes`` (from :func:`~prunegym.experiments.arguments.resolve_search_config`).
    """
    import torch

    from prunegym.agents import make_searcher

    log = log or _silent
    run_dir = Path(run_dir)
    if cfg.search.workloads:
        from prunegym.experiments.generalist import run_generalist

        refuse_schedule(cfg, "search")
        return run_generalist(cfg, run_dir, command=command, resume=resume,
                              extra_callbacks=extra_callbacks, log=log)  # fmt: skip
    refuse_schedule(cfg, "search")
    check_config(cfg)
    check_workers(cfg)
    with ray_session(cfg), open_run_dir(run_dir, resume):
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        workload, env = dense_model_phase(cfg, run_dir, resume, log, notes)
        searcher = make_searcher(cfg.search.agent, env, seed=cfg.seed, **cfg.search.options)
        with workers(cfg, workload) as found:
            _use_workers(searcher, cfg, found)
            if resume:
                searcher.load_checkpoint(run_dir / CHECKPOINT_FILE, env=env)
            else:
                write_config(run_dir, cfg)
                if not workload.in_train_file:  # keep the dense model: export prunes this one
                    save_dense(run_dir / BASE_MODEL_FILE, workload.model, workload.spec,
                               workload.data)  # fmt: skip
            write_run_info(run_dir, command, resume, len(searcher.history))
            callbacks = _callbacks(cfg, run_dir, extra_callbacks)
            n = f", {cfg.search.workers} workers" if cfg.search.workers > 1 else ""
            log(f"searching with {cfg.search.agent}: {cfg.search.episodes} episodes "
                f"({len(searcher.history)} done{n})")  # fmt: skip
            run = play_search(searcher, env, cfg.search.episodes, run_dir, callbacks)
        write_summary(run_dir, cfg, run.result, run.status, run.seconds)
        env.close()
        log(f"search {run.status}: {len(run.result.history)} episodes in {run.seconds:.1f} s")
        return run


# ------------------------------------------------------------------------------ the CLI
def _configure(p: argparse.ArgumentParser) -> None:
    add_search_arguments(p)


def _run(args: argparse.Namespace) -> int:
    cfg, run_dir, resume, notes = resolve_search_config(args, "search")
    refuse_schedule(cfg, "search")
    if not cfg.search.workloads:
        check_config(cfg)
        check_workers(cfg)
    outcome = run_search(cfg, run_dir, command=getattr(args, "argv", sys.argv), resume=resume,
                         log=print_phase, notes=notes)  # fmt: skip
    result = outcome.result
    best = result.best
    if outcome.status == "interrupted":
        print(f"prunegym: interrupted after {result.episodes}/{cfg.search.episodes} episodes; "
              f"checkpoint saved. Continue with: prunegym search --resume {run_dir}",
              file=sys.stderr)  # fmt: skip
        return exit_status(outcome.signum or signal.SIGINT)
    if cfg.search.workloads:
        from prunegym.experiments.generalist import print_workloads

        print_workloads(cfg, run_dir)
        return 0
    metrics = "" if best is None else ", ".join(f"{k} {v:.4g}" for k, v in best.metrics.items())
    print(f"{cfg.search.agent}: {result.episodes} episodes, best reward "
          f"{result.best_reward:.4g} ({metrics}) -> {run_dir}")  # fmt: skip
    return 0


COMMAND = Command(
    name="search",
    help="search per-unit pruning sparsities with an RL agent or a baseline; "
    "writes a run directory (history, best policy, agent, checkpoints)",
    configure=_configure,
    run=_run,
    epilog=TRUSTED_SOURCE_NOTE,
)
