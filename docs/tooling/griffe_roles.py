"""A griffe extension: Sphinx roles in prunegym's docstrings become links in the docs.

prunegym's docstrings cross-reference with Sphinx roles (``:class:`~prunegym.envs.Evaluator```),
which Markdown would print as they are. Each role becomes an optional mkdocs-autorefs
reference: a link where the target is rendered somewhere in the docs, plain code where it
is not (an optional reference never fails the strict build).
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(?P<tilde>~?)(?P<path>[\w.]+)(?P<call>\(\))?`"
)


def _identifier(path: str, obj: Object) -> str:
    """The full dotted path a role names (a bare name is looked up beside ``obj``)."""
    if "." in path:
        return path
    if obj.is_class:
        return f"{obj.path}.{path}"
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
    """Rewrites the roles of every docstring once the object tree is complete."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = convert_roles(obj.docstring.value, obj)
