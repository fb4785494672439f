"""Ctrl-C while a console script starts (issue 28: a traceback from inside an import, or a Ctrl-C a library's bare
``except:`` swallowed, after which the run went on and published its output). Each of the four installed console
scripts gets SIGINT, sent to its process group as a terminal sends it, at several moments of its first second:
exit code 130, the one line ``interrupted``, no traceback, nothing written beside its output."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.deploy_helpers import shared_all_bundle
from tests.test_export_loihi import TINY_TRAIN, shared_bundle, shared_checkpoint

DELAYS_S = (0.05, 0.4, 1.0)
"""When SIGINT is sent after the start (importing the scripts' modules takes 1 to 3 s on the test machines)."""
BIN = Path(sys.executable).parent


def interrupted(script: str, args: list[str], delay: float) -> subprocess.CompletedProcess:
    """Start the installed console script ``script``, send SIGINT to its process group after ``delay`` s."""
    installed = BIN / script
    if "pipeline.launch" not in installed.read_text():
        pytest.fail(f"{installed} does not start through pipeline.launch: reinstall the package (make venv)")
    proc = subprocess.Popen([str(installed), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Each console script's arguments, for a run long enough to be interrupted (the output path is added)."""
    long_train = [a if a != "1" else "50" for a in TINY_TRAIN]  # --epochs 50
    return {"lorsp-train": [*long_train, "--out"],
            "lorsp-export": ["--target", "loihi", str(shared_checkpoint(tmp_path_factory)), "--samples", "64", "-o"],
            "lorsp-hwsim": [str(shared_bundle(tmp_path_factory)), "--samples", "512", "-o"],
            "lorsp-cosim": [str(shared_all_bundle(tmp_path_factory)[0]), "--limit", "256", "-o"]}


@pytest.mark.slow
@pytest.mark.parametrize("script", ["lorsp-train", "lorsp-export", "lorsp-hwsim", "lorsp-cosim"])
def test_ctrl_c_while_a_console_script_starts_is_one_line_and_exit_130(tmp_path_factory, tmp_path, script):
    args = scripts(tmp_path_factory)[script]
    for delay in DELAYS_S:
        out = tmp_path / f"out-{delay}"
        proc = interrupted(script, [*args, str(out)], delay)
        assert proc.returncode == 130, (script, delay, proc.returncode, proc.stderr[-2000:])
        assert proc.stderr.strip().splitlines() == ["interrupted"], (script, delay, proc.stderr[-2000:])
        assert list(tmp_path.iterdir()) == [], (script, delay, list(tmp_path.iterdir()))


def test_the_launcher_runs_a_script_without_the_installed_file():
    proc = subprocess.run([sys.executable, "-m", "pipeline.launch", "lorsp-hwsim", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: lorsp-hwsim"), proc.stderr[-2000:]
