"""The layering rules, read from the source (every import statement, type-only ones included):
no module import cycle in `bot`, `exporter` and `models`; plugins reach `bot` through `bot.api`
alone; the console names no plugin. `docs/architecture.md` states the rules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "exporter", "models")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules(*packages: str, root: Path = ROOT) -> dict[str, Path]:
    return {
        module_name(path, root): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def imported(path: Path, known: dict[str, Path], root: Path = ROOT) -> Iterator[str]:
    """Every module `path` imports, anywhere in the file (type-only imports included);
    `from pkg import mod` counts as `pkg.mod` when that is a module in `known`."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in known else base


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module, or with a self-import
    (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_import_cycle() -> None:
    modules = source_modules(*PACKAGES)
    graph = {
        name: {target for target in imported(path, modules) if target in modules}
        for name, path in modules.items()
    }
    found = list(cycles(graph))
    assert found == [], f"import cycles: {found}"


def test_the_scan_sees_cycles_through_type_only_and_relative_imports(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(map(sorted, cycles(graph))) == [["a", "b", "c"], ["e"]]
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "one.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.two import X\n"
    )
    (tmp_path / "pkg" / "two.py").write_text("def f():\n    from . import one\n")
    modules = source_modules("pkg", root=tmp_path)
    graph = {
        name: {m for m in imported(path, modules, tmp_path) if m in modules}
        for name, path in modules.items()
    }
    assert cycles(graph) == [{"pkg.one", "pkg.two"}]


def bot_imports(path: Path, modules: dict[str, Path], root: Path = ROOT) -> set[str]:
    return {m for m in imported(path, modules, root) if m == "bot" or m.startswith("bot.")}


def test_plugins_import_only_the_public_api() -> None:
    modules = source_modules("bot")
    plugins = {n: p for n, p in modules.items() if n.startswith("bot.plugins")}
    assert plugins, "no plugin found"
    for name, path in plugins.items():
        reached = {m for m in bot_imports(path, modules) if not m.startswith("bot.plugins")}
        assert reached <= {"bot.api"}, f"{name} imports {sorted(reached - {'bot.api'})}"
    # The console finds its commands through the plugins' declarations, never by name.
    console = bot_imports(modules["bot.console"], modules)
    assert not {m for m in console if m.startswith("bot.plugins")}, console


def test_the_markov_example_imports_only_the_public_api() -> None:
    root = ROOT / "examples" / "markov"
    modules = source_modules("charbot_markov", root=root)
    assert modules, "the example is missing"
    for name, path in modules.items():
        reached = bot_imports(path, modules, root)
        assert reached <= {"bot.api"}, f"{name} imports {sorted(reached)}"
