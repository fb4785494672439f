"""Wheels and fresh venvs for the tests that install lorsp as a user would (test_wheel, test_gpu_check)."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.conftest import ROOT

OWN_ENTRIES = ("lorsp", "__editable__.lorsp", "__editable___lorsp", "_lorsp")
"""site-packages entries of lorsp's own (editable) install."""


def build_dist(out: Path, *build_args: str) -> Path:
    """``scripts/build_wheel.sh out *build_args`` with this interpreter (builds from a copy of the tracked files)."""
    built = subprocess.run(["bash", str(ROOT / "scripts" / "build_wheel.sh"), str(out), *build_args],
                           env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def linked_venv(base: Path, name: str, leave_out: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A fresh venv ``base/name`` (no pip) seeing this environment's packages through links, less lorsp's own and
    the entries starting with ``leave_out``; its python and its site-packages."""
    links = base / f"{name}-packages"
    links.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(OWN_ENTRIES + leave_out) and entry.suffix != ".pth":
            (links / entry.name).symlink_to(entry)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / name)], check=True, timeout=120)
    python = base / name / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / f"{name}_packages.pth").write_text(f"{links}\n")
    return python, site
