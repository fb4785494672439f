"""``--device``: names resolved on this machine, CUDA refused in one line where torch has none."""
from __future__ import annotations

import json

import pytest
import torch

from lorsp.plumbing.device import describe_device, process_group_backend, resolve_device
from lorsp.plumbing.errors import LorspError
from tests.conftest import assert_one_line_error, run_cli

NO_CUDA = not torch.cuda.is_available()


def test_cpu_and_auto_resolve_to_the_cpu_without_cuda():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cpu", world=2, local_rank=1) == torch.device("cpu")
    if NO_CUDA:
        assert resolve_device("auto") == torch.device("cpu")
    else:
        assert resolve_device("auto") == torch.device("cuda", 0)
    assert process_group_backend(torch.device("cpu")) == "gloo"
    assert process_group_backend(torch.device("cuda", 1)) == "nccl"
    assert describe_device(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cpu:0", "auto:1", "CUDA", ""])
def test_malformed_device_names_are_refused(spec):
    with pytest.raises(LorspError, match=r"--device must be one of auto\|cpu\|cuda\|cuda:N"):
        resolve_device(spec)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_one_error(spec):
    with pytest.raises(LorspError, match="use --device cpu or auto") as info:
        resolve_device(spec)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(NO_CUDA, reason="needs CUDA")
def test_cuda_ranks_take_their_local_rank_and_refuse_one_shared_index():
    count = torch.cuda.device_count()
    assert resolve_device("cuda", world=count, local_rank=count - 1) == torch.device("cuda", count - 1)
    with pytest.raises(LorspError, match="every rank on one GPU"):
        resolve_device("cuda:0", world=2, local_rank=1)
    with pytest.raises(LorspError, match="does not exist"):
        resolve_device(f"cuda:{count}")


@pytest.mark.slow
@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_lorsp_train_device_cuda_here_is_one_line_and_writes_nothing(tmp_path):
    proc = run_cli("lorsp.train", "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1",
                   "--limit-train", "16", "--limit-test", "16", "--device", "cuda", "--quiet",
                   "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, "--device cuda", "use --device cpu or auto")
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_lorsp_train_device_cpu_records_the_device(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("lorsp.train", "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1",
                   "--limit-train", "16", "--limit-test", "16", "--batch-size", "8", "--prompt", "lorvp",
                   "--device", "cpu", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "metrics.json").read_text())["device"] == "cpu"
