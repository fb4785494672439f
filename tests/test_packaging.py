"""pyproject.toml: ranges with tested lower bounds, Lava an extra that only the Lava paths import."""
from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10, the Lava environment
    import tomli as tomllib

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
LAVA_IMPORT = re.compile(r"^\s*(?:import lava\b|from lava[.\s])", re.M)
PACKAGES = ("lorsp", "deploy", "export", "hw_sim", "pipeline")
# The modules that may import Lava: the chain backend (imported by name on first use) and the general graph's
# Lava runner (imported by hw_sim.graph.lava_check only for --backend lava); the runner of a pixel gates' netx file
# (hw_sim/netx_conv.py, lava-dl, in the child process of its run).
LAVA_MODULES = {"hw_sim/backends/lava.py", "hw_sim/backends/lava_graph.py", "hw_sim/netx_conv.py"}


def requirements(*groups: str) -> list[Requirement]:
    """The requirements of the main dependencies and the named extras."""
    listed = PROJECT["dependencies"] + [r for g in groups for r in EXTRAS[g]]
    return [Requirement(r) for r in listed]


def lowest_constraints() -> dict[str, str]:
    """constraints/lowest.txt as {name: version}."""
    pins = {}
    for line in (ROOT / "constraints" / "lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            pins[name.strip().lower()] = pinned.strip()
    return pins


def test_dependencies_are_ranges_and_every_lower_bound_is_pinned_in_the_lowest_constraints():
    pins = lowest_constraints()
    bounds = {}
    for req in requirements("test", "bench"):
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert not [s for s in req.specifier if s.operator == "=="], f"{req} is pinned, not a range"
        assert len(lower) == 1, f"{req} has no lower bound"
        bounds[req.name.lower()] = lower[0]
    assert pins == bounds


def test_lava_is_an_extra_of_exact_last_releases_and_nothing_else_needs_it():
    assert [str(r) for r in requirements("lava")][-2:] == ["lava-nc==0.10.0", "lava-dl==0.6.0"]
    assert not [r for r in requirements() if r.name.startswith("lava")]
    importing = {str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                 if LAVA_IMPORT.search(p.read_text())}
    assert importing == LAVA_MODULES


def test_this_environment_satisfies_every_range():
    """Whichever of the two environments runs this: the newest releases, or every lower bound; a requirement whose
    marker leaves this Python out is skipped."""
    for req in requirements("test", "bench"):
        if req.marker and not req.marker.evaluate({"extra": "test"}):
            continue  # not for this Python (SpikingJelly on 3.10)
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            pytest.fail(f"{req.name} is not installed")
        assert req.specifier.contains(installed, prereleases=True), (req.name, installed, str(req.specifier))
