"""benchmarks/gpu_check.sh, run here on the CPU at a tiny scale (GPU_CHECK_DEVICE=cpu): every step, its files."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

TINY = ("--dataset sklearn-digits --image-size 32 --epochs 1 --batch-size 16 --limit-train 32 --limit-test 16 "
        "--grad-images 8 --speed-image-size 32 --speed-batch 8 --speed-steps 1")


def test_the_gpu_check_runs_every_step_on_the_cpu_and_leaves_its_tables(tmp_path):
    wheels = tmp_path / "wheels"  # this Python lacks nothing, so no wheel is installed; the checksums are checked
    wheels.mkdir()
    (wheels / "placeholder-0-py3-none-any.whl").write_bytes(b"not installed")
    digest = hashlib.sha256(b"not installed").hexdigest()
    (wheels / "SHA256SUMS").write_text(f"{digest}  placeholder-0-py3-none-any.whl\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "WHEELS": str(wheels), "OUT": str(out), "GPU_CHECK_DEVICE": "cpu",
           "GPU_CHECK_SEEDS": "0", "GPU_CHECK_ARGS": TINY}
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "installed 0 of 1 wheels" in proc.stdout and "lava backend not loaded: True" in proc.stdout
    precision = json.loads((out / "precision-gpu.json").read_text())
    assert set(precision["speed"]) == {"lorsp:prompt-lr=0.2,rank=8", "lorvp:prompt-lr=0.2"}
    assert all(set(by) == {"fp32", "bf16", "fp16"} for by in precision["speed"].values())
    compared = json.loads((out / "device_compare.json").read_text())["pairs"]
    assert sorted(p["prompt"] for p in compared) == ["lorsp", "lorvp"]
    assert all(p["test_accuracy_difference"] == 0 for p in compared)  # CPU against CPU: the same run
    (wheels / "SHA256SUMS").write_text(f"{'0' * 64}  placeholder-0-py3-none-any.whl\n")
    broken = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert broken.returncode != 0 and "FAILED" in broken.stdout + broken.stderr
