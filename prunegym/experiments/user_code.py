"""The user's own builders, named ``package.module:function`` (a model, a dataset).

A config (or a ``build_model`` / ``build_data`` call) that names a function is the
user's own code intent: prunegym imports that module and calls the function, as
``python -c "from package.module import function; function(**kwargs)"`` would. Like
other tools that take ``module:function`` (uvicorn, gunicorn), the current directory is
importable. Mistakes (no such module or function, arguments it does not take) are one
line :class:`~prunegym.experiments.config.ConfigError` (exit status 2 on the command line).

A *file* never chooses code to run: an import path recorded in a checkpoint's metadata
(its model or its dataset) is used only when the caller names the same path itself
(:func:`check_trusted`); the config is the caller's intent, the checkpoint is data.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Collection, Mapping
from typing import Any

from prunegym.experiments.config import ConfigError

__all__ = ["call_function", "check_trusted", "is_import_path", "load_function"]

_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_import_path(name: str) -> bool:
    """Whether ``name`` reads ``package.module:function`` (``tv:<name>`` is torchvision's)."""
    return isinstance(name, str) and ":" in name and not name.startswith("tv:")


def check_trusted(name: object, trusted: Collection[object], source: str, key: str) -> None:
    """Refuse, in one line and before importing anything, an import path that a file
    (``source``) records but the caller did not name in ``trusted``; other names (zoo,
    ``tv:``, registered datasets) pass."""
    if isinstance(name, str) and is_import_path(name) and name not in trusted:
        raise ConfigError(
            f"{source} names code to run ({name!r}); a file never chooses code: if you trust "
            f"it, name it yourself ({key}: {name})"
        )


def load_function(path: str, what: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (attribute chains allowed: ``module:Class.build``)."""
    if not _PATH.match(path):
        raise ConfigError(f"{what} {path!r} is not an import path package.module:function")
    module_name, _, attrs = path.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # the current directory is importable, as with python -m
    try:
        # trusted-only by design: the path is the user's own config (naming code asks
        # prunegym to run it); a checkpoint's recorded path reaches here only when the
        # config names the same one (check_trusted); run directories must be trusted
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise  # the user's module imports something missing: their traceback helps
        raise ConfigError(
            f"{what} {path}: no module named {missing!r} (is its directory on PYTHONPATH?)"
        ) from None
    for attr in attrs.split("."):
        if not hasattr(obj, attr):
            raise ConfigError(f"{what} {path}: {obj.__name__!r} has no attribute {attr!r}")
        obj = getattr(obj, attr)
    if not callable(obj):
        raise ConfigError(f"{what} {path} is {type(obj).__name__!r}, not a function")
    return obj


def call_function(fn: Callable[..., Any], path: str, what: str, kwargs: Mapping[str, Any]) -> Any:
    """``fn(**kwargs)``, after checking that ``fn`` takes these keywords (a one-line error)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: just call
        return fn(**kwargs)
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{what} {path}: {exc} (it was given {_names(kwargs)})") from None
    return fn(**kwargs)


def _names(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(kwargs) if kwargs else "no arguments"
