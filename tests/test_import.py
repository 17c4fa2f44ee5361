"""`import scopeloop` stays light: the lazily imported parts load on first access.

Import *time* is measured by the benchmark (integration/bench, row "import"); these
tests check what it depends on, which modules a bare import loads, and that every
public name still resolves, to the object its module defines.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import scopeloop
import scopeloop.lowlevel

ROOT = Path(__file__).resolve().parent.parent

# Modules a program that only runs a loop with scopes and groups never needs.
LAZY_MODULES = {
    "scopeloop.abc", "scopeloop.concurrency", "scopeloop.connectable",
    "scopeloop.diagnostics", "scopeloop.fdwait", "scopeloop.from_thread",
    "scopeloop.future", "scopeloop.guard", "scopeloop.portal", "scopeloop.resolve",
    "scopeloop.runvar", "scopeloop.streams", "scopeloop.sync", "scopeloop.tcp",
    "scopeloop.to_thread", "scopeloop.typedattr",
}


def _fresh(code: str) -> Any:
    """Run ``code`` in a fresh interpreter importing this checkout; return what it
    printed, decoded from JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
        text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_bare_import_loads_none_of_the_lazy_modules() -> None:
    where, loaded = _fresh("""
        import json, sys
        import scopeloop
        print(json.dumps([scopeloop.__file__,
                          sorted(m for m in sys.modules if m.startswith('scopeloop'))]))
    """)
    assert Path(where).parent == ROOT / "scopeloop"  # this checkout's, not an install's
    assert "scopeloop.scope" in loaded and "scopeloop.group" in loaded
    assert LAZY_MODULES.isdisjoint(loaded), sorted(LAZY_MODULES.intersection(loaded))


def test_a_bare_import_loads_nothing_that_asyncio_uvloop_and_sniffio_do_not() -> None:
    added = _fresh("""
        import json, sys
        import asyncio, sniffio, uvloop
        before = set(sys.modules)
        import scopeloop
        print(json.dumps(sorted(set(sys.modules) - before)))
    """)
    # __future__ is what `from __future__ import annotations` loads; whether asyncio,
    # uvloop or sniffio loaded it already depends on their versions (3.13.5's asyncio
    # does, 3.11.7's does not).
    assert [m for m in added if m.split(".")[0] not in ("scopeloop", "__future__")] == []


def test_first_access_imports_the_module_then_the_name_is_plain() -> None:
    event, loaded = _fresh("""
        import json, sys
        import scopeloop
        event = scopeloop.Event
        print(json.dumps([event.__module__, 'scopeloop.sync' in sys.modules]))
    """)
    assert (event, loaded) == ("scopeloop.sync", True)
    assert scopeloop.Event is vars(scopeloop)["Event"]  # cached: later reads are plain


def test_star_import_defines_every_public_name() -> None:
    missing = _fresh("""
        import json
        import scopeloop
        namespace = {}
        exec('from scopeloop import *', namespace)
        print(json.dumps(sorted(set(scopeloop.__all__) - set(namespace))))
    """)
    assert missing == []


def test_every_public_name_resolves_and_is_listed_by_dir() -> None:
    for name in scopeloop.__all__:
        assert getattr(scopeloop, name) is not None, name
    assert set(scopeloop.__all__) <= set(dir(scopeloop))
    assert len(scopeloop.__all__) == len(set(scopeloop.__all__))


def test_lazy_names_are_the_objects_their_modules_define() -> None:
    lazy = scopeloop._LAZY
    assert set(lazy) <= set(scopeloop.__all__), sorted(set(lazy) - set(scopeloop.__all__))
    for name, (module_name, attribute) in lazy.items():
        module = importlib.import_module(module_name, "scopeloop")
        expected = module if attribute is None else getattr(module, attribute)
        assert getattr(scopeloop, name) is expected, name


def test_the_type_checking_imports_match_the_lazy_table() -> None:
    # mypy reads the TYPE_CHECKING imports, the interpreter the table: a name in one
    # only would be untyped, or missing at run time.
    tree = ast.parse((ROOT / "scopeloop" / "__init__.py").read_text())
    blocks = [node for node in tree.body if isinstance(node, ast.If)
              and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"]
    assert len(blocks) == 1
    imported = {(node.module, alias.name) for node in blocks[0].body
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    expected = {(module.lstrip("."), name) if attribute else (None, name)
                for name, (module, attribute) in scopeloop._LAZY.items()}
    assert imported == expected


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        scopeloop.no_such_name  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        scopeloop.lowlevel.no_such_name  # noqa: B018
    assert not hasattr(scopeloop, "no_such_name")


def test_lowlevel_run_variables_load_on_first_access() -> None:
    before, after, same = _fresh("""
        import json, sys
        import scopeloop.lowlevel as lowlevel
        before = 'scopeloop.runvar' in sys.modules
        var = lowlevel.RunVar
        import scopeloop.runvar
        print(json.dumps([before, 'scopeloop.runvar' in sys.modules,
                          var is scopeloop.runvar.RunVar]))
    """)
    assert (before, after, same) == (False, True, True)
    assert "RunVar" in scopeloop.lowlevel.__all__


def _scopeloop_imports() -> dict[str, set[str]]:
    """Each scopeloop module and the scopeloop modules it imports, at module level or
    inside functions (lazy imports count: a circle through them is still a circle),
    leaving out imports made only for type checking."""
    import ast

    package = Path(scopeloop.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        base = parts if is_package else parts[:-1]
        targets: set[str] = set()

        def visit(node: ast.AST) -> None:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.orelse:
                    visit(child)
                return
            if isinstance(node, ast.ImportFrom) and node.level:
                origin = base[:len(base) - (node.level - 1)]
                if node.module:
                    targets.add(".".join(origin + [node.module]))
                else:
                    targets.update(".".join(origin + [alias.name]) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scopeloop"):
                targets.add(node.module or "")
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("scopeloop"))
            for child in ast.iter_child_nodes(node):
                visit(child)

        visit(ast.parse(path.read_text()))
        graph[name] = targets
    return {name: {t for t in targets if t in graph and t != name}
            for name, targets in graph.items()}


def test_no_module_of_scopeloop_imports_in_a_circle() -> None:
    graph = _scopeloop_imports()
    assert {"scopeloop.scope", "scopeloop.task"} <= set(graph)
    assert "scopeloop.task" in graph["scopeloop.scope"]  # (the walk sees real edges)
    circles: list[list[str]] = []

    def walk(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                circles.append(path[path.index(target):] + [target])
            elif target != "scopeloop":  # the package's lazy names are leaves
                walk(target, path + [target])

    for module in sorted(graph):
        if module != "scopeloop":
            walk(module, [module])
    assert not circles, f"import circles: {sorted({' -> '.join(c) for c in circles})}"
