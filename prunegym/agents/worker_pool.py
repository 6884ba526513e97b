"""A pool of Ray workers that evaluates black-box candidates in parallel.

The baselines (``random``, ``uniform``, ``evolution``, any black-box optimiser) propose
whole action sequences; :meth:`WorkerPool.evaluate_batch` plays each of them as one
episode on a free worker and returns the outcomes in submission order, whichever
worker finished first. An episode's result depends only on its actions (and reset
seed), never on which worker played it, so a batch gives the same results with any
number of workers (with the same torch threads per worker: thread counts may change
the last bits of float reductions).

Faults: a worker whose process dies mid-episode is restarted by Ray and the episode
is played again on it (``max_task_retries``), so every candidate is evaluated and
returned exactly once. A worker that cannot be restarted any more is dropped and its
candidates go to the others; only when every worker is gone does the batch fail.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import ray

from prunegym.agents.env_worker import EpisodeOutcome
from prunegym.agents.ray_cluster import (
    MAX_RESTARTS,
    MAX_TASK_RETRIES,
    kill_workers,
    reraise_cause,
    spawn_workers,
    wait_ready,
    worker_lost,
)


class WorkersLostError(RuntimeError):
    """Every worker died and could not be restarted."""


class WorkerPool:
    """``num_workers`` Ray actors, each with its own env built from ``env_fn``.

    ``env_fn`` (a picklable callable returning the env) is put into Ray's object store
    once and shared by all workers. ``depth`` episodes are queued per worker so that
    a worker never waits for the driver between two episodes. The pool is ready when
    built: every env is built (an env factory's error is raised here, as itself). Call
    :meth:`close` (or use the pool as a context manager) to end the workers. Ray must
    be initialised (:func:`~prunegym.agents.ray_cluster.init_ray`).
    """

    def __init__(
        self,
        env_fn: Callable[[], Any],
        num_workers: int,
        *,
        threads_per_worker: int | None = None,
        resources_per_worker: Mapping[str, float] | None = None,
        max_restarts: int = MAX_RESTARTS,
        max_task_retries: int = MAX_TASK_RETRIES,
        depth: int = 2,
    ) -> None:
        if int(num_workers) < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if int(depth) < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = int(depth)
        self._actors, self._factory_refs = spawn_workers(
            [env_fn] * int(num_workers),
            threads_per_worker=threads_per_worker,
            resources_per_worker=resources_per_worker,
            max_restarts=max_restarts,
            max_task_retries=max_task_retries,
        )
        self.observation_space, self.action_space = wait_ready(self._actors)

    @property
    def num_workers(self) -> int:
        """Workers still alive (or restartable)."""
        return len(self._actors)

    def worker_pids(self) -> list[int]:
        """The process id of each worker (waits until every env is built)."""
        return ray.get([a.pid.remote() for a in self._actors])

    def evaluate_batch(
        self,
        action_sequences: Sequence[Sequence[float]],
        seeds: Sequence[int | None] | None = None,
        per_unit: str | None = None,
    ) -> list[EpisodeOutcome]:
        """Play every action sequence as one episode; the outcomes in submission order
        (``outcome.index`` is the position in ``action_sequences``). ``per_unit``:
        each sequence holds one value per unit, played as actions or sparsities (see
        :meth:`~prunegym.agents.env_worker.EnvWorker.play`)."""
        return list(self.imap(action_sequences, seeds, per_unit))

    def imap(
        self,
        action_sequences: Sequence[Sequence[float]],
        seeds: Sequence[int | None] | None = None,
        per_unit: str | None = None,
    ) -> Iterator[EpisodeOutcome]:
        """Like :meth:`evaluate_batch`, yielding each outcome as soon as it and all
        before it are done (so a caller may record and checkpoint as it goes)."""
        jobs = [[float(a) for a in seq] for seq in action_sequences]
        seeds = [None] * len(jobs) if seeds is None else list(seeds)
        if len(seeds) != len(jobs):
            raise ValueError(f"got {len(seeds)} seeds for {len(jobs)} action sequences")
        if not self._actors:
            raise WorkersLostError("the worker pool is closed")
        queue = deque(range(len(jobs)))
        pending: dict[Any, tuple[int, Any]] = {}
        finished: dict[int, EpisodeOutcome] = {}

        def submit(actor: Any) -> None:
            i = queue.popleft()
            pending[actor.play.remote(i, jobs[i], seeds[i], per_unit)] = (i, actor)

        for _ in range(self.depth):
            for actor in self._actors:
                if queue:
                    submit(actor)
        following = 0
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i, actor = pending.pop(ref)
            try:
                finished[i] = ray.get(ref)
            except Exception as exc:
                if not worker_lost(exc):
                    reraise_cause(exc)
                    raise
                self._drop(actor)
                queue.appendleft(i)
                if not self._actors:
                    raise WorkersLostError(
                        f"every worker died and could not be restarted (last: {exc})"
                    ) from None
                actor = min(self._actors, key=lambda a: sum(b is a for _, b in pending.values()))
            if queue and actor in self._actors:
                submit(actor)
            while following in finished:
                yield finished.pop(following)
                following += 1

    def _drop(self, actor: Any) -> None:
        if actor in self._actors:
            self._actors.remove(actor)

    def close(self) -> None:
        """End every worker (their envs and processes)."""
        kill_workers(self._actors)
        self._actors = []
        self._factory_refs = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
