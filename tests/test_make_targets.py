"""Every `make TARGET` that README.md or docs/ tell a user to run exists and has a recipe.

A target lost from the Makefile does not fail loudly: `make data` on a phony target with no
rule prints "Nothing to be done" and exits 0, so CI went on with the Debian datasets' tests
skipped. `make -n` (print, run nothing) catches that.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TARGET = re.compile(r"`make ([a-z][a-z-]*)")


def documented_targets() -> list[str]:
    """The targets named as `make TARGET` in README.md and docs/*.md."""
    found = {m.group(1) for path in DOCS for m in TARGET.finditer(path.read_text())}
    return sorted(found)


def test_the_docs_name_the_readme_commands():
    assert {"demo", "test", "data", "bench", "results"} <= set(documented_targets())


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("target", documented_targets())
def test_documented_target_has_a_recipe(target):
    # -o for the venv stamp: a dry run must not plan the install on a machine without the venv.
    done = subprocess.run(["make", "-n", "-o", ".venv/.lorsp-installed", target], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Nothing to be done" not in done.stdout + done.stderr
    assert done.stdout.strip(), f"make -n {target} printed no command"


def test_data_target_runs_the_fetch_script():
    done = subprocess.run(["make", "-n", "data"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "scripts/fetch_debian_data.sh" in done.stdout
