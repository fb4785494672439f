"""Shared by test_export_targets and test_cosim: one ``--target all`` bundle per session, in-process CLI calls."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

import pytest

from tests.conftest import run_cli
from tests.test_export_loihi import shared_checkpoint

PRECISIONS = ("fp16", "int8", "int8-trt")
CHECK_SAMPLES = 16


def shared_all_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``lorsp-export --target all`` of the session's tiny LoRSP checkpoint (made once); its directory and stdout."""
    root = tmp_path_factory.getbasetemp() / "all-shared"
    out, stdout = root / "bundle", root / "export-stdout.txt"
    if not out.exists():
        proc = run_cli("pipeline.export_cli", "--target", "all", str(shared_checkpoint(tmp_path_factory)), "-o", str(out),
                       "--precision", *PRECISIONS, "--samples", str(CHECK_SAMPLES), "--quiet")
        assert proc.returncode == 0, proc.stderr[-2000:]
        stdout.write_text(proc.stdout)
    return out, stdout.read_text()


def linked_copy(bundle: Path, dst: Path) -> Path:
    """A copy of ``bundle`` made of hard links (cheap); replace a file with :func:`rewrite` before changing it."""
    shutil.copytree(bundle, dst, copy_function=os.link)
    return dst


def rewrite(path: Path, data: bytes) -> None:
    """Give ``path`` new content without touching the file it was linked to."""
    path.unlink()
    path.write_bytes(data)


def call_cli(main: Callable[[list[str]], int], capsys: pytest.CaptureFixture,
             *argv: str) -> subprocess.CompletedProcess:
    """Run a console script's ``main`` in this process; its exit code and output as a CompletedProcess."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(argv), code, captured.out, captured.err)


LORSP_PACKAGES = ("lorsp", "deploy", "export", "hw_sim", "pipeline", "benchmarks", "tests")
# An isolated interpreter (-I: no PYTHONPATH, no working directory on sys.path) with an import hook that
# refuses the blocked packages (lorsp's are installed editable in the venv, so -I alone does not hide them);
# it fails if lorsp can be imported before the script runs, or if any blocked package was imported after.
_ISOLATED = """
import runpy, sys
BLOCKED = set(sys.argv[1].split(","))
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Refuse())
try:
    import lorsp
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("lorsp is importable")
script, sys.argv = sys.argv[2], sys.argv[2:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    leaked = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
    if leaked:
        print("imported:", leaked, file=sys.stderr)
        raise SystemExit(3)
"""


def run_isolated(script: Path, *args: str, blocked: Sequence[str], timeout: float = 300,
                 cwd: str | Path = "/") -> subprocess.CompletedProcess:
    """Run ``script args`` in ``cwd`` where none of ``blocked`` (which must hold ``lorsp``) can be imported."""
    assert "lorsp" in blocked
    return subprocess.run([sys.executable, "-I", "-c", _ISOLATED, ",".join(blocked), str(script), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)
