"""Dependencies point one way (docs/design.md "Layout"): no import cycle between modules of the package, in-function
imports included, and the registry sits below engine and data."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[1] / "dpt"
TESTS = Path(__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: Set[str]) -> Set[str]:
    """dpt modules imported anywhere in ``path`` (``from dpt.x import y`` counts dpt.x.y when y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph() -> Dict[str, Set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        # a package's __init__ re-exports its modules: an edge from the package to them, not a layer
        graph[name] = {m for m in imported_modules(path, set(files)) if m != name}
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One cycle as a list of modules, or [] (depth-first search, ignoring package -> own submodule edges)."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_no_import_cycles_between_modules():
    graph = import_graph()
    # package __init__ files import their own modules; cycles through them are not layering cycles
    modules = {n: {t for t in ts if not (PACKAGE / Path(*t.split(".")[1:]) / "__init__.py").is_file()}
               for n, ts in graph.items()}
    assert find_cycle(modules) == []


def imports_of(graph: Dict[str, Set[str]], package: str) -> Set[str]:
    """Subpackages (``dpt.<name>``) that modules of ``package`` import."""
    inside = (n for n in graph if n == package or n.startswith(package + "."))
    return {".".join(t.split(".")[:2]) for n in inside for t in graph[n]} - {package}


def test_registry_engine_and_data_layers():
    graph = import_graph()
    assert not {m for m in graph["dpt.registry"] if m.startswith("dpt.")}
    assert not imports_of(graph, "dpt.data") & {"dpt.engine", "dpt.trainers", "dpt.tools", "dpt.datasets"}
    assert not imports_of(graph, "dpt.engine") & {"dpt.trainers", "dpt.tools", "dpt.datasets"}


def test_the_checker_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def imported_test_modules(path: Path) -> Set[str]:
    """``test_*`` modules that ``path`` imports anywhere (in-function imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return {name for name in found if name.startswith("test_")}


def test_no_test_module_imports_another():
    """Shared fixtures live in conftest.py and plain helpers in helpers.py: a test module that imports another
    couples the two and collects the other's fixtures under a second name."""
    offenders = {p.name: sorted(imported_test_modules(p)) for p in sorted(TESTS.glob("test_*.py"))}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_test_import_checker_sees_every_form(tmp_path):
    path = tmp_path / "test_x.py"
    path.write_text("import os\nimport test_a\nfrom test_b import argv\nfrom helpers import REPO\n\n"
                    "def f():\n    from test_c.sub import y\n    import test_d as d\n")
    assert imported_test_modules(path) == {"test_a", "test_b", "test_c", "test_d"}
