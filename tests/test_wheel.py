"""The built wheel runs the whole chain outside the repository.

``scripts/build_wheel.sh`` builds from a copy of the checkout's files (tracked and untracked, not ignored) with
``python -m build`` (an sdist, then the wheel from that sdist, as PyPI users get it). The
wheel goes into a fresh venv, with ``--no-deps``: its dependencies come from this environment's
site-packages through a folder of links that leaves out lorsp's own editable install, so the only
lorsp that venv can import is the wheel's. Then lorsp-train, lorsp-export --target all, lorsp-hwsim
and lorsp-cosim run from that venv's ``bin/``, in a folder of their own, and an audit hook
(``sitecustomize``, in every process and in their forked children) records every file opened under the
checkout (outside the environment the dependencies are linked from, which may lie in it, as `.venv` does): there
must be none.

``scripts/wheel_check.sh`` is the heavier version of this, with nothing borrowed: a fresh venv on
another Python with every dependency resolved from the registry (docs/install.md).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.venv_helpers import build_dist, linked_venv

pytestmark = pytest.mark.slow

SITECUSTOMIZE = '''\
"""Test-only: record every file opened under LORSP_FORBIDDEN_ROOT but outside LORSP_ALLOWED_PREFIX, the environment
whose packages are linked in (tests/test_wheel.py)."""
import os
import sys

_root = os.environ.get("LORSP_FORBIDDEN_ROOT")
if _root:
    _root = os.path.realpath(_root) + os.sep
    _allowed = os.path.realpath(os.environ["LORSP_ALLOWED_PREFIX"]) + os.sep
    _log = open(os.environ["LORSP_FORBIDDEN_LOG"], "a", buffering=1)

    def _audit(event, args):
        if event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        try:
            path = os.path.realpath(os.fsdecode(args[0]))
        except (TypeError, ValueError, OSError):
            return
        if path.startswith(_root) and not path.startswith(_allowed):
            _log.write(f"{os.getpid()} {path}\\n")

    sys.addaudithook(_audit)
'''


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> dict:
    """A fresh venv holding only the built wheel, its dependencies linked from this environment."""
    base = tmp_path_factory.mktemp("wheel")
    build_dist(base / "dist")
    wheels = sorted((base / "dist").glob("lorsp-*.whl"))
    assert len(wheels) == 1 and sorted((base / "dist").glob("lorsp-*.tar.gz")), sorted((base / "dist").iterdir())
    python, site = linked_venv(base, "venv")
    venv = base / "venv"
    # Outside the checkout: pip runs in the venv's interpreter with the working folder on its path, and the
    # checkout's lorsp.egg-info (an editable install's) would read as "lorsp already installed" there.
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", str(wheels[0])], capture_output=True, text=True, timeout=300,
                               env=pip_env, cwd=base)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert (site / "lorsp" / "__init__.py").is_file() and (venv / "bin" / "lorsp-train").is_file(), \
        (sorted(p.name for p in site.iterdir()), installed.stdout[-2000:], installed.stderr[-2000:])
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    work = base / "work"
    work.mkdir()
    log = base / "opened-under-checkout.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", LORSP_FORBIDDEN_ROOT=str(ROOT),
               LORSP_ALLOWED_PREFIX=sys.prefix, LORSP_FORBIDDEN_LOG=str(log))
    return {"venv": venv, "python": python, "site": site, "work": work, "env": env, "log": log}


def run_script(wheel_venv: dict, name: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """One of the wheel's console scripts, run in the venv's work folder."""
    proc = subprocess.run([str(wheel_venv["venv"] / "bin" / name), *args], cwd=wheel_venv["work"],
                          env=wheel_venv["env"], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (name, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def test_the_venv_imports_lorsp_from_the_wheel_only(wheel_venv):
    proc = subprocess.run([str(wheel_venv["python"]), "-c",
                           "import json, lorsp, deploy, hw_sim, export, pipeline, torch, numpy\n"
                           "print(json.dumps([m.__file__ for m in (lorsp, deploy, hw_sim, export, pipeline)]))"],
                          cwd=wheel_venv["work"], env=wheel_venv["env"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for path in json.loads(proc.stdout):
        assert Path(path).is_relative_to(wheel_venv["site"]), path


def test_the_audit_hook_sees_a_read_of_the_checkout(tmp_path, wheel_venv):
    env = {**wheel_venv["env"], "LORSP_FORBIDDEN_LOG": str(tmp_path / "log")}
    subprocess.run([str(wheel_venv["python"]), "-c", f"open({str(ROOT / 'pyproject.toml')!r}).read()"],
                   cwd=wheel_venv["work"], env=env, check=True, timeout=60)
    assert (tmp_path / "log").read_text().split()[1:] == [str((ROOT / "pyproject.toml").resolve())]


def test_train_export_hwsim_and_cosim_from_the_wheel_read_nothing_of_the_checkout(wheel_venv):
    work = wheel_venv["work"]
    run_script(wheel_venv, "lorsp-train", "--prompt", "lorsp", "--dataset", "sklearn-digits", "--image-size", "32",
               "--epochs", "1", "--limit-train", "64", "--limit-val", "32", "--limit-test", "32",
               "--batch-size", "16", "--device", "cpu", "--quiet", "--out", "run")
    run_script(wheel_venv, "lorsp-export", "--target", "all", "run/model.pt", "-o", "bundle", "--samples", "8",
               "--quiet")
    run_script(wheel_venv, "lorsp-hwsim", "bundle", "--samples", "8", "--quiet", "-o", "report")
    run_script(wheel_venv, "lorsp-cosim", "bundle", "--dataset", "sklearn-digits", "--split", "test", "--limit", "16",
               "--quiet", "-o", "cosim")
    report = json.loads((work / "report" / "report.json").read_text())
    assert report["backend"] == "fast" and report["modes"] == ["float", "fixed"]
    cosim = json.loads((work / "cosim" / "cosim.json").read_text())
    assert cosim["samples"] == cosim["agreement"]["samples"] == 16 and cosim["bundle"]["artifacts_verified"] >= 8
    manifest = json.loads((work / "bundle" / "manifest.json").read_text())
    assert manifest["target"] == "all" and (work / "bundle" / "backbone.onnx").is_file()
    opened = wheel_venv["log"].read_text().splitlines() if wheel_venv["log"].exists() else []
    assert not opened, opened[:20]
