"""Shared fixtures. Tests run on the real offline assets; nothing is mocked."""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(module: str, *args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` the way a user's console script would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=full_env)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, one ``error:`` line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="session")
def lite0():
    from lorsp.backbones import create_backbone

    return create_backbone("efficientnet_lite0")


def _installed(*distributions: str) -> bool:
    """Whether every one of ``distributions`` is installed (read from their metadata: nothing is imported)."""
    try:
        return all(importlib.metadata.version(name) for name in distributions)
    except importlib.metadata.PackageNotFoundError:
        return False


LAVA_INSTALLED = _installed("lava-nc", "lava-dl")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A ``lava``-marked test needs Lava: skipped without it, failed without it where LORSP_REQUIRE_LAVA is set.

    `make test` runs these tests in the Lava environment with LORSP_REQUIRE_LAVA=1, so a Lava that went
    missing there is a failure, not a quiet skip; the main environment deselects them (``-m "not lava"``).
    """
    if item.get_closest_marker("lava") is None or LAVA_INSTALLED:
        return
    if os.environ.get("LORSP_REQUIRE_LAVA"):
        pytest.fail("LORSP_REQUIRE_LAVA is set but lava-nc / lava-dl are not importable here", pytrace=False)
    pytest.skip("needs Lava (pip install 'lorsp[lava]', Python 3.10); `make test` runs it in .venv-lava")


LAVA = pytest.param("lava", marks=pytest.mark.lava, id="lava")
"""The ``lava`` backend as a test parameter, marked: it runs where Lava is installed (`make test`'s Lava environment)."""
