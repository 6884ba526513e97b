"""Where the workers run: a local Ray instance or an existing cluster, and their actors.

Only the distributed path imports this module (``search.workers > 1``); the serial
path never imports Ray. :func:`init_ray` connects (or starts a local instance sized to
the workers), and refuses an unreachable address at once with one line
(:class:`RayAddressError`). :func:`spawn_workers` starts one
:class:`~prunegym.agents.env_worker.EnvWorker` actor per environment factory; each
distinct factory goes through Ray's object store once, however many actors build
from it. Actors restart when their process dies (``max_restarts``) and their
interrupted calls are retried on the restarted actor (``max_task_retries``).
:func:`map_tasks` runs independent jobs (benchmark cells) as Ray tasks.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

try:
    import ray
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("parallel workers need Ray: pip install 'prunegym[distributed]'") from exc

from prunegym.agents.env_worker import EnvWorker

#: Seconds to wait for a cluster address to accept a connection.
CONNECT_TIMEOUT_S = 5.0
#: How often a worker actor is restarted after its process dies, and an interrupted
#: call retried on it, before the work is given up.
MAX_RESTARTS = 3
MAX_TASK_RETRIES = 3

_ACTOR_KEYS = {"num_cpus", "num_gpus", "memory"}


class RayAddressError(ValueError):
    """The Ray address is malformed or nothing answers there (a one-line message)."""


def init_ray(
    address: str | None = None,
    num_workers: int = 1,
    resources_per_worker: Mapping[str, float] | None = None,
    *,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> None:
    """Connect to Ray before any work starts.

    ``address`` unset: a new local instance sized to the workers (``num_workers`` times
    the per-worker CPUs, GPUs and custom resources; no dashboard, worker logs stay in
    Ray's log files). ``"auto"``: the cluster this machine already belongs to
    (``RAY_ADDRESS`` or the one ``ray start`` started). ``"host:port"`` (a cluster's
    GCS) or ``"ray://host:port"`` (Ray client): that cluster; it must accept a TCP
    connection within ``timeout_s`` seconds. A Ray already initialised in this process
    is reused. Raises :class:`RayAddressError` (one line) when the address is
    malformed or unreachable.
    """
    if int(num_workers) < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    resources = check_resources(resources_per_worker)
    target = _probe_target(address)
    if target is not None:
        _probe(f"{target[0]}:{target[1]}" if address == "auto" else str(address), *target,
               timeout_s)  # fmt: skip
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None:
        custom = {k: v * num_workers for k, v in resources.items() if k not in _ACTOR_KEYS}
        options.update(
            address="local",
            num_cpus=max(1, math.ceil(resources.get("num_cpus", 1.0) * num_workers)),
            num_gpus=math.ceil(resources.get("num_gpus", 0.0) * num_workers),
            resources=custom or None,
        )
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RayAddressError(f"cannot connect to Ray at {address or 'local'}: {first}") from None


def _probe_target(address: str | None) -> tuple[str, int] | None:
    """The (host, port) to try before connecting, or None for a local/auto address."""
    if address is None:
        return None
    if not isinstance(address, str) or not address.strip():
        raise RayAddressError(f"distributed.address must be a non-empty string, got {address!r}")
    if address == "auto":
        env = os.environ.get("RAY_ADDRESS")
        return None if not env or env == "auto" else _probe_target(env)
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayAddressError(
            f"distributed.address must be 'auto', 'host:port' or 'ray://host:port', got {address!r}"
        )
    return host.strip("[]"), int(port)


def _probe(address: str, host: str, port: int, timeout_s: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RayAddressError(
            f"cannot reach the Ray cluster at {address} ({reason}, waited up to {timeout_s:g} s)"
        ) from None


def check_resources(resources: Mapping[str, float] | None) -> dict[str, float]:
    """Validate ``distributed.resources_per_worker`` (``num_cpus``, ``num_gpus``,
    ``memory`` in bytes, or custom resource names) and return it as floats."""
    out: dict[str, float] = {}
    for key, value in dict(resources or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"resources_per_worker[{key!r}] must be a number, got {value!r}")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"resources_per_worker[{key!r}] must be >= 0, got {value!r}")
        out[str(key)] = float(value)
    return out


def default_threads(num_workers: int, resources: Mapping[str, float] | None = None) -> int:
    """Torch threads per worker: its ``num_cpus`` when given, else this machine's
    cores divided among the workers (at least 1)."""
    cpus = dict(resources or {}).get("num_cpus")
    if cpus is not None and cpus >= 1:
        return int(cpus)
    return max(1, (os.cpu_count() or 1) // max(1, int(num_workers)))


def spawn_workers(
    env_fns: Sequence[Callable[[], Any]],
    *,
    threads_per_worker: int | None = None,
    resources_per_worker: Mapping[str, float] | None = None,
    max_restarts: int = MAX_RESTARTS,
    max_task_retries: int = MAX_TASK_RETRIES,
) -> tuple[list[Any], list[Any]]:
    """Start one :class:`EnvWorker` actor per factory: ``(actors, factory_refs)``.

    Each distinct factory object is ``ray.put`` once and its reference is shared by
    all actors built from it (keep ``factory_refs`` alive as long as the actors: a
    restarted actor rebuilds its env from it). Ray must be initialised
    (:func:`init_ray`).
    """
    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialised: call init_ray() first")
    if not env_fns:
        raise ValueError("need at least one environment factory")
    resources = check_resources(resources_per_worker)
    threads = threads_per_worker or default_threads(len(env_fns), resources)
    if int(threads) < 1:
        raise ValueError(f"threads_per_worker must be >= 1, got {threads}")
    refs: dict[int, Any] = {}
    for fn in env_fns:
        if not callable(fn):
            raise TypeError(f"an environment factory must be callable, got {type(fn).__name__}")
        if id(fn) not in refs:
            refs[id(fn)] = ray.put(fn)
    custom = {k: v for k, v in resources.items() if k not in _ACTOR_KEYS}
    remote = ray.remote(EnvWorker).options(
        num_cpus=resources.get("num_cpus", 1.0),
        num_gpus=resources.get("num_gpus", 0.0),
        memory=resources.get("memory"),
        resources=custom or None,
        max_restarts=int(max_restarts),
        max_task_retries=int(max_task_retries),
    )
    actors = [remote.remote(refs[id(fn)], int(threads)) for fn in env_fns]
    return actors, list(refs.values())


def wait_ready(actors: Sequence[Any]) -> tuple[Any, Any]:
    """Wait until every actor has built its env; their common (observation, action)
    spaces. An env factory's error is raised as itself (after ending the actors)."""
    try:
        found = ray.get([a.spaces.remote() for a in actors])
    except Exception as exc:
        kill_workers(actors)
        reraise_cause(exc)
        raise
    if any(s != found[0] for s in found[1:]):
        kill_workers(actors)
        raise ValueError("every environment must have the same observation and action space")
    return found[0]


def map_tasks(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    max_retries: int = MAX_TASK_RETRIES,
) -> Generator[tuple[int, Any], None, None]:
    """Run ``fn(item)`` for every item as a Ray task with these resources; yield
    ``(index, result)`` as each one finishes. A task whose process dies is run again
    (``max_retries``); an error raised by ``fn`` is raised here as itself. Meant for
    independent, resumable work such as benchmark cells (``fn`` must be picklable).

    When the caller stops early (closes the generator, an error or Ctrl-C), the tasks
    still pending are stopped with :func:`stop_tasks` before this returns."""
    task = ray.remote(fn).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                  max_retries=int(max_retries))  # fmt: skip
    pending = {task.remote(item): i for i, item in enumerate(items)}
    try:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:
                reraise_cause(exc)
                raise
            yield i, result
    finally:
        if pending:
            stop_tasks(list(pending))


def stop_tasks(refs: Sequence[Any], timeout_s: float | None = None) -> None:
    """Stop tasks and wait (up to ``timeout_s``; None: until) for them to end: queued
    ones never start, a running one gets a SIGINT (Ray's non-forced cancel), which a
    search answers as Ctrl-C: it finishes its episode and saves its checkpoint."""
    for ref in refs:
        with contextlib.suppress(ValueError, ray.exceptions.RayError):
            ray.cancel(ref, force=False)
    ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)


def kill_workers(actors: Sequence[Any]) -> None:
    """End the actors for good (no restart); an actor already gone is skipped."""
    for actor in actors:
        with contextlib.suppress(ValueError, ray.exceptions.RayError):
            ray.kill(actor, no_restart=True)


def worker_lost(exc: BaseException) -> bool:
    """True when ``exc`` says the worker died for good (restarts used up)."""
    return isinstance(exc, ray.exceptions.RayActorError)


def reraise_cause(exc: BaseException) -> None:
    """Raise the error the worker's code raised (its own type and message), when
    ``exc`` is Ray's wrapper around one; return otherwise."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, Exception):
        raise cause from exc
