"""The house plan: imports point only downward (README "Layout", docs/architecture.md).

    lorsp      <- deploy <- export  \\
                          <- hw_sim   >- pipeline (lorsp-export, the demo)

Every import statement in every module of the five packages is parsed with ``ast``
(imports inside functions count too), so a new upward import fails here before it
can tangle the packages again.

Inside a package the files must not import in a circle either (issue 26): the
import graph of all the project's modules has no strongly connected component of
more than one file. The graph's rules:

* a node is a module file; a package's ``__init__.py`` is the package's module
  (``lorsp/data/__init__.py`` is ``lorsp.data``);
* every import statement is an edge, wherever it sits (in a function, under
  ``if TYPE_CHECKING:``): a lazy import hides a circle from Python, not from a reader;
* ``import a.b.c`` is an edge to the longest of ``a.b.c``, ``a.b``, ``a`` that is a
  project module; ``from a.b import c`` is an edge to ``a.b.c`` when that is a module
  (or package), else to ``a.b`` (``c`` is a name defined or re-exported there);
* the packages Python imports on the way (``a`` and ``a.b`` for ``a.b.c``) are not
  edges. So a package ``__init__`` that re-exports its submodules is no circle with
  them, and ``from lorsp.data import offline`` is an edge to ``lorsp.data.offline``
  alone; but a submodule that takes a re-exported *name* from its own package
  (``from lorsp.data import create_splits`` in ``lorsp/data/...``) is an edge to the
  ``__init__``, which does close a circle: Python would run that ``__init__`` half
  way through it, so it is reported;
* an import of a module by itself is ignored; imports outside the five packages
  are not nodes.
"""
from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lorsp", "deploy", "export", "hw_sim", "pipeline")
ALLOWED = {
    "lorsp": {"lorsp"},
    "deploy": {"lorsp", "deploy"},
    "export": {"lorsp", "deploy", "export"},
    "hw_sim": {"lorsp", "deploy", "hw_sim"},
    "pipeline": set(PACKAGES),
}
"""Which of the project's packages each package may import."""


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every import in ``path`` that names one of :data:`PACKAGES`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; the house uses absolute ones"
            names = [node.module or ""]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in PACKAGES]
    return found


def upward_imports(package: str) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line} imports {target}"
            for path in sorted((ROOT / package).rglob("*.py"))
            for line, target in imported_packages(path) if target not in ALLOWED[package]]


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_only_downward(package):
    assert upward_imports(package) == []


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from hw_sim.report import write_report\n    import export.nir\n")
    assert imported_packages(module) == [(4, "hw_sim"), (5, "export")]


Graph = dict[str, dict[str, int]]
"""``module -> {imported module: line of its first import}``."""


def module_name(path: Path, root: Path) -> str:
    """Dotted name of the module file ``path`` under ``root``; an ``__init__.py`` names its package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name."""
    return {module_name(path, root): path
            for package in packages for path in sorted((root / package).rglob("*.py"))}


def import_targets(node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    """The project modules an import statement is an edge to (the module docstring's rules)."""
    def longest_known(name: str) -> str | None:
        parts = name.split(".")
        return next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules), None)

    if isinstance(node, ast.Import):
        found = [longest_known(alias.name) for alias in node.names]
    else:
        base = node.module or ""
        found = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else longest_known(base)
                 for alias in node.names]
    return [name for name in found if name is not None]


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> Graph:
    """The module-level import graph of ``packages`` under ``root``."""
    modules = project_modules(root, packages)
    graph: Graph = {name: {} for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in import_targets(node, modules):
                    if target != name:
                        graph[name].setdefault(target, node.lineno)
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """The strongly connected components of ``graph`` (Tarjan's algorithm, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while not component or component[-1] != node:
                        component.append(stack.pop())
                        on_stack.discard(component[-1])
                    components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(components)


def shortest_cycle(graph: Graph, component: list[str]) -> list[str]:
    """A shortest circle through the first module of ``component``: ``[m, ..., m]``."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return [*reversed(chain), start]
            if child in members and child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"{component} is no circle")


def import_circles(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Each circle of imports among the files of ``packages``, as a readable chain.

    ``a.py:12 -> b.py:40 -> a.py`` reads: line 12 of ``a.py`` imports ``b``, line 40 of
    ``b.py`` imports ``a``. A component with more files than its shortest circle names them all.
    """
    graph = import_graph(root, packages)
    modules = project_modules(root, packages)

    def shown(name: str) -> str:
        return modules[name].relative_to(root).as_posix()

    circles = []
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        cycle = shortest_cycle(graph, component)
        chain = " -> ".join(f"{shown(a)}:{graph[a][b]}" for a, b in zip(cycle, cycle[1:])) + f" -> {shown(cycle[0])}"
        if len(component) > len(cycle) - 1:
            chain += f" (one circle of {len(component)} tangled files: {', '.join(shown(m) for m in component)})"
        circles.append(chain)
    return circles


def test_no_import_circles_between_files():
    circles = import_circles()
    assert not circles, "imports in a circle (break each downward):\n" + "\n".join(circles)


def write_package(root: Path, files: dict[str, str]) -> None:
    """Write ``files`` (relative path -> text) under ``root``."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_check_sees_an_import_circle(tmp_path):
    write_package(tmp_path, {
        "pkg/__init__.py": "from pkg.a import f\nfrom pkg import b, c\n",  # re-exports: no circle
        "pkg/a.py": "import os\n\ndef f():\n    from pkg.b import g\n    return g\n",
        "pkg/b.py": "from pkg import c\n\ndef g():\n    import pkg.c.x\n",
        "pkg/c.py": "import pkg.a as a\n",
        "pkg/d.py": "from pkg.a import f\n",
    })
    assert import_graph(tmp_path, ("pkg",)) == {
        "pkg": {"pkg.a": 1, "pkg.b": 2, "pkg.c": 2}, "pkg.a": {"pkg.b": 4}, "pkg.b": {"pkg.c": 1},
        "pkg.c": {"pkg.a": 1}, "pkg.d": {"pkg.a": 1}}
    assert import_circles(tmp_path, ("pkg",)) == ["pkg/a.py:4 -> pkg/b.py:1 -> pkg/c.py:1 -> pkg/a.py"]


def test_a_name_taken_from_the_own_package_init_is_a_circle(tmp_path):
    write_package(tmp_path, {
        "pkg/__init__.py": "from pkg.a import f\nfrom pkg.b import g\n",
        "pkg/a.py": "def f(): ...\n",
        "pkg/b.py": "from pkg import f\n\ng = f\n",
    })
    assert import_circles(tmp_path, ("pkg",)) == ["pkg/__init__.py:2 -> pkg/b.py:1 -> pkg/__init__.py"]


def test_a_wider_component_names_every_file(tmp_path):
    write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import pkg.b\n",
        "pkg/b.py": "import pkg.a\nimport pkg.c\n",
        "pkg/c.py": "import pkg.a\n",
    })
    assert import_circles(tmp_path, ("pkg",)) == [
        "pkg/a.py:1 -> pkg/b.py:1 -> pkg/a.py (one circle of 3 tangled files: pkg/a.py, pkg/b.py, pkg/c.py)"]


def test_every_layer_is_a_package_setuptools_installs():
    """pyproject's packages.find takes directories with an __init__.py: a layer without one is left out of a wheel."""
    from setuptools import find_packages

    found = set(find_packages(str(ROOT), include=[f"{p}*" for p in PACKAGES]))
    assert set(PACKAGES) <= found
