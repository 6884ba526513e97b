"""A griffe extension: prunegym's docstrings as the reader of the API reference needs them.

- Sphinx roles (``:class:`~prunegym.envs.Evaluator```), which Markdown would print as
  they are, become optional mkdocs-autorefs references: a link where the target is
  rendered somewhere in the docs, plain code where it is not (an optional reference
  never fails the strict build).
- A docstring completed at import time (``PruningEnv`` fills its ``{features}`` table
  from the feature list) is read from the imported object, since griffe reads the
  source and would show the placeholder.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(?P<tilde>~?)(?P<path>[\w.]+)(?P<call>\(\))?`"
)


PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def runtime_docstring(obj: Object) -> str | None:
    """The docstring of the imported object, when the source's has placeholders it fills."""
    if not PLACEHOLDER.search(obj.docstring.value if obj.docstring else ""):
        return None
    try:
        found: Any = importlib.import_module(obj.module.path)
        for name in obj.path[len(obj.module.path) + 1 :].split("."):
            found = getattr(found, name)
    except (ImportError, AttributeError):
        return None
    doc = inspect.getdoc(found)
    return doc if doc and not PLACEHOLDER.search(doc) else None


def _identifier(path: str, obj: Object) -> str:
    """The full dotted path a role names: a bare name is looked up in the class the
    docstring belongs to, then in its module (an imported name gives its origin)."""
    if "." in path:
        return path
    scopes = [s for s in (obj, obj.parent) if s is not None and s.is_class]
    for scope in [*scopes, obj.module]:
        member = scope.members.get(path)
        if member is not None:
            return member.target_path if member.is_alias else member.path
    return f"{obj.module.path}.{path}"


def convert_roles(text: str, obj: Object) -> str:
    """``text`` with every Sphinx role replaced by an optional autorefs link."""

    def replace(match: re.Match[str]) -> str:
        path = match["path"]
        title = path.rsplit(".", 1)[-1] if match["tilde"] else path
        title += match["call"] or ""
        identifier = _identifier(path, obj)
        return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'

    return ROLE.sub(replace, text)


class SphinxRoles(Extension):
    """Completes and converts every docstring once the object tree is complete."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        obj.docstring.value = runtime_docstring(obj) or obj.docstring.value
        if ":" in obj.docstring.value:
            obj.docstring.value = convert_roles(obj.docstring.value, obj)
