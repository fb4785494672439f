"""The house plan: imports point only downward (README "Layout", docs/architecture.md).

    lorsp      <- deploy <- export  \\
                          <- hw_sim   >- pipeline (lorsp-export, the demo)

Every import statement in every module of the five packages is parsed with ``ast``
(imports inside functions count too), so a new upward import fails here before it
can tangle the packages again.
"""
from __future__ import annotations

import ast
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


def test_every_layer_is_a_package_setuptools_installs():
    """pyproject's packages.find takes directories with an __init__.py: a layer without one is left out of a wheel."""
    from setuptools import find_packages

    found = set(find_packages(str(ROOT), include=[f"{p}*" for p in PACKAGES]))
    assert set(PACKAGES) <= found
