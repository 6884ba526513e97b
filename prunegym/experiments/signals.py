"""SIGINT and SIGTERM: a stop that saves, not a stop that loses.

While a command runs, SIGTERM (what ``timeout``, SLURM and Kubernetes send) raises
:class:`Terminated`, a ``KeyboardInterrupt``, so cleanup runs as for Ctrl-C. During a
search, :func:`stop_at_episode_boundary` turns the first SIGINT or SIGTERM into a stop
request: the searcher finishes (or abandons) the current episode, the checkpoint is
saved and the command exits with ``128 + signal``; a second signal aborts at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind like Ctrl-C (``signum`` says which signal it was)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(signum: int) -> int:
    """The shell's convention for a process stopped by ``signum``: 128 + its number."""
    return 128 + int(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` inside the block (main thread only)."""
    if not _in_main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """Which signal asked the search to stop (``None``: none did)."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextlib.contextmanager
def stop_at_episode_boundary(searcher: Any) -> Iterator[StopRequest]:
    """First SIGINT/SIGTERM: ``searcher.request_stop()`` (it checkpoints at the next safe
    point); a second one raises ``KeyboardInterrupt`` (or :class:`Terminated`)."""
    request = StopRequest()
    if not _in_main_thread():
        yield request
        return

    def handler(signum: int, frame: Any) -> None:
        if request.signum is not None:
            raise Terminated(signum) if signum == signal.SIGTERM else KeyboardInterrupt
        request.signum = signum
        searcher.request_stop()
        name = signal.Signals(signum).name
        print(f"\nprunegym: {name}: stopping after this episode and saving a checkpoint "
              f"({name} again to abort)", file=sys.stderr, flush=True)  # fmt: skip

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
