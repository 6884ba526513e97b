"""The import structure of prunegym: no cycles (function-level imports included), commands
that never import the command line, no reach-ins to another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from prunegym.experiments.commands import COMMANDS, load_command

ROOT = Path(__file__).resolve().parents[1] / "prunegym"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement except those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _imports(name: str) -> dict[str, list[str]]:
    """Imported prunegym module -> the names taken from it."""
    out: dict[str, list[str]] = {}
    for node in _runtime_imports(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    out.setdefault(alias.name, [])
        elif node.module in MODULES:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in MODULES:
                    out.setdefault(sub, [])
                else:
                    out.setdefault(node.module, []).append(alias.name)
    out.pop(name, None)
    return out


GRAPH = {name: _imports(name) for name in MODULES}


def _cycle_from(start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for dep in GRAPH[node]:
            if dep == start:
                return [*path, start]
            # a package's __init__ importing its own submodules is not a cycle worth a test
            if dep not in seen and not start.startswith(dep + "."):
                seen.add(dep)
                stack.append((dep, [*path, dep]))
    return None


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("prunegym.experiments")))
def test_no_import_cycle_through_an_experiments_module(name: str) -> None:
    assert _cycle_from(name) is None, " -> ".join(_cycle_from(name) or [])


def test_commands_never_import_the_command_line() -> None:
    for name, module in COMMANDS.items():
        assert load_command(name).name == name
        assert "prunegym.experiments.cli" not in GRAPH[module], module


def test_no_module_imports_another_modules_private_names() -> None:
    private = [
        f"{name} imports {dep}.{imported}"
        for name, deps in GRAPH.items()
        for dep, names in deps.items()
        for imported in names
        if imported.startswith("_") and not imported.startswith("__")
    ]
    assert private == []
