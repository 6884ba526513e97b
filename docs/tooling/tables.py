"""mkdocs hooks: the tables of the docs, generated from prunegym's code at build time.

A page asks for a table with an HTML comment alone on a line::

    <!-- generated: features -->
    <!-- generated: typeddict prunegym.envs.contract.StepInfo -->

and the build replaces it with the table, read from the code the docs describe (the
repository being built, first on ``sys.path``), so a renamed feature, a new searcher or a
changed default shows up in the docs without anyone editing them. An unknown table name
fails the build. ``docs/coverage.md`` (written by another tool) joins the navigation as
"Model coverage" when it exists.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import inspect
import io
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

MARKER = re.compile(r"^<!-- generated: (?P<name>[\w-]+)(?: (?P<arg>[^>]*?))? -->$", re.M)
COVERAGE_PAGE = "coverage.md"
COVERAGE_TITLE = "Model coverage"


# ---------------------------------------------------------------------------- helpers
def _cell(text: Any) -> str:
    """One table cell: on one line, its pipes escaped (inside code spans they need not be)."""
    parts = " ".join(str(text).split()).split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


ROLE = re.compile(r":(?:py:)?[a-z]+:`(?P<tilde>~?)(?P<path>[\w.]+)(?P<call>\(\))?`")


def _markdown(text: str) -> str:
    """reStructuredText bits of a docstring in Markdown: roles and double backticks."""

    def role(match: re.Match[str]) -> str:
        path = match["path"].rsplit(".", 1)[-1] if match["tilde"] else match["path"]
        return f"`{path}{match['call'] or ''}`"

    return ROLE.sub(role, text).replace("``", "`")


def _first_paragraph(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return _markdown(doc.split("\n\n")[0].strip())


def _code(value: Any) -> str:
    return f"`{value!r}`" if not isinstance(value, str) else f"`{value}`"


def _resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return importlib.import_module(dotted)


def _annotation(value: Any) -> str:
    return getattr(value, "__forward_arg__", None) or getattr(value, "__name__", None) or str(value)


def _field_comments(cls: type) -> dict[str, str]:
    """``name: type  # comment`` lines of ``cls`` and of the classes it derives from in
    the same module (TypedDicts keep no comments, so they are read from the source)."""
    source = Path(inspect.getfile(cls)).read_text()
    lines = source.splitlines()
    classes = {n.name: n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef)}
    comments: dict[str, str] = {}
    todo = [cls.__name__]
    while todo:
        node = classes.get(todo.pop())
        if node is None:
            continue
        todo += [b.id for b in node.bases if isinstance(b, ast.Name)]
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                _, _, comment = lines[stmt.lineno - 1].partition("#")
                comments.setdefault(stmt.target.id, comment.strip())
    return comments


# ---------------------------------------------------------------------------- tables
def features(_: str | None) -> str:
    """The observation vector: one row per feature, in the vector's order."""
    from prunegym.envs.observation import FEATURE_VERSION, FEATURES, OBSERVATION_SIZE

    rows = [(i, f"`{name}`", meaning) for i, (name, meaning) in enumerate(FEATURES)]
    return (
        f"Feature version **{FEATURE_VERSION}**: {OBSERVATION_SIZE} features, each in [0, 1].\n\n"
        + _table(("#", "feature", "value"), rows)
    )


def typeddict(dotted: str | None) -> str:
    """The keys of a TypedDict: type, whether always present, and its source comment."""
    cls = _resolve(str(dotted))
    comments = _field_comments(cls)
    optional = getattr(cls, "__optional_keys__", frozenset())
    rows = [
        (f"`{key}`", f"`{_annotation(hint)}`", "no" if key in optional else "yes",
         comments.get(key, ""))
        for key, hint in cls.__annotations__.items()
    ]  # fmt: skip
    return _table(("key", "type", "always", "meaning"), rows)


def _arguments(fn: Callable[..., Any]) -> str:
    """``fn``'s parameters as a call would name them (no annotations, no ``self``)."""
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    return ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in params
    )


def protocol(dotted: str | None) -> str:
    """The members of a Protocol with the first line of their docstrings."""
    cls = _resolve(str(dotted))
    rows = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            rows.append((f"`{name}`", "property", _first_paragraph(member.fget)))
        elif callable(member):
            rows.append((f"`{name}({_arguments(member)})`", "method", _first_paragraph(member)))
    return _table(("member", "kind", "meaning"), rows)


def rewards(_: str | None) -> str:
    """The reward registry: name, what it computes, its weights, the default."""
    from prunegym.envs.rewards import REWARDS
    from prunegym.experiments.config import EnvConfig

    default = EnvConfig().reward
    rows = []
    for name, (fn, weights) in REWARDS.items():
        shown = ", ".join(f"{k}={v:g}" for k, v in weights.items()) or "none"
        rows.append((f"`{name}`" + (" (default)" if name == default else ""),
                     _first_paragraph(fn), shown))  # fmt: skip
    return _table(("reward", "value", "weights (defaults)"), rows)


def _options(cls: Callable[..., Any], skip: Sequence[str]) -> str:
    params = inspect.signature(cls).parameters.values()
    shown = [
        f"`{p.name}={p.default!r}`" if p.default is not inspect.Parameter.empty else f"`{p.name}`"
        for p in params
        if p.name not in skip and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return ", ".join(shown) or "none"


def searchers(_: str | None) -> str:
    """Every searcher ``search.agent`` accepts, its kind, summary and options."""
    from prunegym.agents import searchers as registry
    from prunegym.agents.factory import ALGOS

    sourced = getattr(registry, "SOURCED", ())
    rows = []
    for name in registry.SEARCHERS:
        if name in registry.BASELINES:
            cls = registry.BASELINES[name]
            kind = "reuses a source run" if name in sourced else "baseline"
            rows.append((f"`{name}`", kind, _first_paragraph(cls),
                         _options(cls, ("env", "seed"))))  # fmt: skip
        else:
            algo = ALGOS[name]
            sb3 = next(c.__name__ for c in algo.__mro__ if c.__module__.startswith("stable_b"))
            own = algo.__module__.startswith("prunegym")
            summary = _first_paragraph(algo) if own else f"Stable-Baselines3's {sb3}"
            rows.append((f"`{name}`", f"RL agent (SB3 `{sb3}`)", summary,
                         "see [AMC settings](#amc-settings)"))  # fmt: skip
    return _table(("searcher", "kind", "what it does", "options (defaults)"), rows)


def signature(dotted: str | None) -> str:
    """The keyword parameters of a callable with their defaults."""
    fn = _resolve(str(dotted))
    rows = [
        (f"`{p.name}`", "(required)" if p.default is inspect.Parameter.empty else _code(p.default))
        for p in inspect.signature(fn).parameters.values()
        if p.name not in ("self",) and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return _table(("parameter", "default"), rows)


def config(_: str | None) -> str:
    """Every key of a search config file with its type and default."""
    from prunegym.experiments.config import Config

    rows = []
    top = Config()
    for field in dataclasses.fields(Config):
        value = getattr(top, field.name)
        if not dataclasses.is_dataclass(value):
            rows.append((f"`{field.name}`", f"`{field.type}`", _code(value)))
            continue
        for sub in dataclasses.fields(value):
            rows.append((f"`{field.name}.{sub.name}`", f"`{sub.type}`",
                         _code(getattr(value, sub.name))))  # fmt: skip
    return _table(("key", "type", "default"), rows)


def value(dotted: str | None) -> str:
    """A constant of the code: a mapping as a table, a sequence as a list, else inline."""
    found = _resolve(str(dotted))
    if isinstance(found, dict):
        return _table(("key", "value"), [(f"`{k}`", _code(v)) for k, v in found.items()])
    if isinstance(found, tuple | list):
        return ", ".join(_code(v) for v in found)
    return _code(found)


def commands(_: str | None) -> str:
    """The subcommands of ``prunegym`` with their one-line help."""
    from prunegym.experiments.commands import COMMANDS, load_command

    rows = [(f"[`{name}`](#{name})", load_command(name).help) for name in COMMANDS]
    return _table(("command", "what it does"), rows)


def help_text(name: str | None) -> str:
    """``prunegym NAME --help`` as the command line prints it."""
    from prunegym.experiments.cli import main

    argv = [name, "--help"] if name else ["--help"]
    out = io.StringIO()
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "90"
    try:
        with contextlib.redirect_stdout(out):
            status = main(argv)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = saved
    if status != 0:
        raise ValueError(f"prunegym {' '.join(argv)} exited with {status}")
    return "```text\n" + out.getvalue().rstrip() + "\n```"


def modules(package: str | None) -> str:
    """A ``:::`` block (docstring only) for every module of ``package`` not already
    rendered on the page, so the API reference lists every module with what it does."""
    import pkgutil

    pkg = importlib.import_module(str(package))
    names = sorted(f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__))
    blocks = [
        f"::: {name}\n    options:\n      members: false\n      heading_level: 3\n"
        for name in names
        if name not in _rendered_on_page and not name.rpartition(".")[2].startswith("_")
    ]
    return "\n".join(blocks)


def coverage_link(_: str | None) -> str:
    """A link to the model-coverage page, when the docs have one."""
    if not (DOCS_DIR / COVERAGE_PAGE).is_file():
        return ""
    return f"- [{COVERAGE_TITLE}]({COVERAGE_PAGE}): which model architectures prune, and how."


TABLES: dict[str, Callable[[str | None], str]] = {
    "features": features,
    "typeddict": typeddict,
    "protocol": protocol,
    "rewards": rewards,
    "searchers": searchers,
    "signature": signature,
    "config": config,
    "value": value,
    "commands": commands,
    "help": help_text,
    "modules": modules,
    "coverage-link": coverage_link,
}
DOCS_DIR = Path(__file__).resolve().parents[1]
_rendered_on_page: set[str] = set()  # modules the page renders itself (``::: name``)


# ---------------------------------------------------------------------------- mkdocs hooks
def on_config(config: Any, **kwargs: Any) -> Any:
    """Import prunegym from the repository being built; add the coverage page if present."""
    root = str(Path(config["config_file_path"]).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    nav = config.get("nav")
    listed = nav is not None and any(COVERAGE_PAGE in str(item) for item in nav)
    if nav is not None and not listed and (DOCS_DIR / COVERAGE_PAGE).is_file():
        nav.insert(-1, {COVERAGE_TITLE: COVERAGE_PAGE})  # before the API reference
    return config


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace every ``<!-- generated: NAME [ARG] -->`` line by its table."""
    _rendered_on_page.clear()
    _rendered_on_page.update(re.findall(r"^::: ([\w.]+)", markdown, re.M))

    def render(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ValueError(f"{page.file.src_path}: unknown generated table {name!r}; "
                             f"known: {', '.join(TABLES)}")  # fmt: skip
        return TABLES[name](match["arg"])

    return MARKER.sub(render, markdown)
