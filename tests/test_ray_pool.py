"""WorkerPool and init_ray: candidate evaluation on Ray workers, faults, addresses."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ray_helpers import (
    killing_env_fn,
    local_ray,  # noqa: F401 (fixture)
    play_serial,
    slow_env_fn,
    square_or_die,
    summary,
    tiny_env_fn,
)

ray = pytest.importorskip("ray")

from prunegym.agents.ray_cluster import RayAddressError, init_ray, map_tasks  # noqa: E402
from prunegym.agents.worker_pool import WorkerPool  # noqa: E402


def candidates(n_units: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1.0, 1.0, n_units) for _ in range(count)]


def serial_summaries(env_fn, cands) -> list[tuple]:
    env = env_fn()
    return [summary(*play_serial(env, c)) for c in cands]


@pytest.mark.usefixtures("local_ray")
def test_batches_match_the_serial_results_in_submission_order_with_1_and_2_workers() -> None:
    env_fn = tiny_env_fn()
    n = env_fn().unwrapped.n_units
    cands = candidates(n, 5, seed=0)
    cands[0][0] = 1.0  # candidate 0 is played slowly: it finishes after later ones
    cands.append(cands[2].copy())  # a repeated candidate is evaluated (and returned) twice
    expected = serial_summaries(env_fn, cands)
    slow = slow_env_fn(env_fn, first_action=1.0, seconds=1.0)
    for workers in (1, 2):
        with WorkerPool(slow, workers, threads_per_worker=1) as pool:
            pids = pool.worker_pids()
            outcomes = pool.evaluate_batch(cands)
            with pytest.raises(ValueError, match="end exactly at the last action"):
                pool.evaluate_batch([cands[0][:-1]])  # the worker's own error, as itself
        assert [o.index for o in outcomes] == list(range(len(cands)))
        assert [summary(o.actions, o.infos, o.reward) for o in outcomes] == expected
        assert {o.pid for o in outcomes} == set(pids) and len(pids) == workers
    # with two workers, candidate 0 (slow) was still running when later ones finished
    assert outcomes[1].pid != outcomes[0].pid


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("max_restarts", [3, 0])
def test_a_worker_killed_mid_evaluation_loses_and_duplicates_nothing(
    tmp_path: Path, max_restarts: int
) -> None:
    env_fn = tiny_env_fn()
    n = env_fn().unwrapped.n_units
    cands = candidates(n, 6, seed=1)
    expected = serial_summaries(env_fn, cands)
    marker = tmp_path / "killed"
    # the first worker to finish evaluating its second episode dies before answering
    dying = killing_env_fn(env_fn, str(marker), at_step=n, episode=2)
    with WorkerPool(dying, 2, threads_per_worker=1, max_restarts=max_restarts) as pool:
        before = set(pool.worker_pids())
        outcomes = pool.evaluate_batch(cands)
        after = set(pool.worker_pids())
    assert marker.exists()
    assert [o.index for o in outcomes] == list(range(len(cands)))
    assert [summary(o.actions, o.infos, o.reward) for o in outcomes] == expected
    survivors = before & after
    assert len(survivors) == 1
    # restarted in a new process, or (no restarts left) dropped: the other did its work
    assert len(after) == (2 if max_restarts else 1)
    if not max_restarts:
        assert {o.pid for o in outcomes[-2:]} <= survivors


@pytest.mark.usefixtures("local_ray")
def test_tasks_run_each_item_once_even_when_a_process_dies(tmp_path: Path) -> None:
    marker = str(tmp_path / "killed")
    items = [(x, marker) for x in range(5)]
    results = dict(map_tasks(square_or_die, items, num_cpus=1))
    assert Path(marker).exists()  # the task for 2 died once and was run again
    assert {i: r[0] for i, r in results.items()} == {x: x * x for x in range(5)}
    with pytest.raises(ValueError, match="negative: -1"):
        list(map_tasks(square_or_die, [(-1, marker)], max_retries=0))


def test_an_unreachable_address_is_a_quick_one_line_error() -> None:
    with socket.socket() as s:  # a loopback port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    was_initialized = ray.is_initialized()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        start = time.perf_counter()
        with pytest.raises(RayAddressError) as err:
            init_ray(address, num_workers=2, timeout_s=2.0)
        assert time.perf_counter() - start < 5.0
        assert "\n" not in str(err.value) and address in str(err.value)
        assert isinstance(err.value, ValueError)
    for address in ("ray://nohost", "host:port", "", "http://127.0.0.1"):
        with pytest.raises(RayAddressError, match=r"distributed\.address"):
            init_ray(address, num_workers=1)
    assert ray.is_initialized() == was_initialized  # nothing started or left behind


def test_the_serial_path_never_imports_ray() -> None:
    code = (
        "import sys\n"
        "import prunegym, prunegym.agents, prunegym.experiments, prunegym.experiments.cli\n"
        "import prunegym.agents.env_worker\n"
        "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if 'ray' in m)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
