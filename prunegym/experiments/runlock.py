"""One writer per run directory: an exclusive OS lock held by the command that writes it.

``search``, ``run`` and ``export`` hold ``RUN_DIR/run.lock`` (``fcntl.flock``) from
before their first expensive step to their end. A second writer fails at once with one
line naming the holder's PID. The kernel drops the lock when its process dies, even by
``kill -9``, so a lock file left by a killed run never blocks ``--resume``. The lock is
re-entrant within a process (``run`` holds it across its search and its export).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from prunegym.experiments.config import ConfigError

LOCK_FILE = "run.lock"

_held: dict[Path, int] = {}  # resolved run directory -> depth of run_dir_lock calls


class RunDirectoryBusy(ConfigError):
    """Another process holds the run directory's lock (one line, exit status 2)."""


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


def _acquire(run_dir: Path) -> int:
    path = run_dir / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise RunDirectoryBusy(
                f"run directory {run_dir} is in use by another prunegym process (PID {pid}); "
                "wait for it to end or stop it"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # its previous holder may have removed the file between our open and lock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def _release(run_dir: Path, fd: int) -> None:
    try:
        with contextlib.suppress(FileNotFoundError):
            (run_dir / LOCK_FILE).unlink()  # while still holding it: no one can take it meanwhile
    finally:
        os.close(fd)  # closing drops the lock


@contextlib.contextmanager
def run_dir_lock(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``run_dir``'s exclusive lock (``run_dir`` must exist) for the ``with`` block.

    Raises :class:`RunDirectoryBusy` naming the holder's PID when another process has it.
    """
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = _acquire(run_dir)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        _release(run_dir, fd)
