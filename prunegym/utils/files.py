"""Atomic file writers: a crash or an error leaves the old file (or none), never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], write: Callable[[Any], None]) -> Path:
    """Write through ``write(fileobj)`` to a temporary file beside ``path``, then rename.

    The data is flushed to disk before the rename and the file gets the usual 0644 mode
    (``mkstemp`` alone would leave it readable by its owner only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, lambda fh: fh.write(text.encode()))


def write_json(
    path: str | os.PathLike[str], obj: Any, sort_keys: bool = False, allow_nan: bool = True
) -> Path:
    """Write ``obj`` as indented JSON atomically; fails before touching ``path`` if not JSON.

    Keys keep their insertion order unless ``sort_keys`` (unit names stay in execution order).
    ``allow_nan=False`` makes NaN and infinities a ``ValueError`` (strict JSON, which other
    tools read) instead of writing the non-standard ``NaN`` / ``Infinity``.
    """
    text = json.dumps(obj, indent=2, sort_keys=sort_keys, allow_nan=allow_nan) + "\n"
    return atomic_write_text(path, text)
