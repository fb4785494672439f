"""Checkpoints that would grow on load (issue 28: six 140-byte pickles grew to 3.6 GB before a refusal) and
pickles that carry code. A storage declared larger than the bytes the file holds for it, in torch's zip or legacy
format, a compressed record, and a pickle calling ``os.system`` are each one line with exit code 2 through the real
console scripts, before anything is allocated or run; nothing is written."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
import torch

from benchmarks.fuzz_hostile import declare_numel, legacy_bomb, zip_with
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.torch_files import check_torch_file
from tests.conftest import assert_one_line_error, run_cli
from tests.test_export_loihi import shared_checkpoint

class Evil:
    """Pickled as a call of ``os.system`` that would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_files(checkpoint: Path, marker: Path) -> dict[str, bytes]:
    source = checkpoint.read_bytes()
    buffer = io.BytesIO()
    torch.save({"format": "lorsp-checkpoint", "x": Evil(marker)}, buffer)
    return {"zip-declares-3.6GB": zip_with(source, declare_numel),
            "legacy-declares-3.6GB": legacy_bomb(),
            "compressed-records": zip_with(source, compress=zipfile.ZIP_DEFLATED),
            "calls-os.system": buffer.getvalue()}


FRAGMENTS = {"zip-declares-3.6GB": "declares 3600000000 bytes, but the file holds",
             "legacy-declares-3.6GB": "declares 3600000000 bytes, but the file holds",
             "compressed-records": "is compressed; torch.save writes none",
             "calls-os.system": "carrying code, which is never run"}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(FRAGMENTS))
def test_a_checkpoint_that_would_grow_or_run_code_is_one_line_before_loading(tmp_path_factory, tmp_path, case):
    path = tmp_path / "model.pt"
    path.write_bytes(hostile_files(shared_checkpoint(tmp_path_factory), tmp_path / "PWNED")[case])
    assert path.stat().st_size < 200_000
    proc = run_cli("pipeline.export_cli", "--target", "loihi", str(path), "-o", str(tmp_path / "out"), "--no-simulate",
                   timeout=300)
    assert_one_line_error(proc, FRAGMENTS[case])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no output, and no PWNED


@pytest.mark.slow
def test_a_resume_file_and_backbone_weights_declaring_gigabytes_are_one_line(tmp_path_factory, tmp_path):
    last = shared_checkpoint(tmp_path_factory).parent / "last.pt"
    resume = tmp_path / "last.pt"
    resume.write_bytes(zip_with(last.read_bytes(), declare_numel))
    proc = run_cli("lorsp.train", "--resume", str(resume), "--out", str(tmp_path / "run"), "--quiet", timeout=300)
    assert_one_line_error(proc, "resume checkpoint declares", "refused before reading")
    weights = tmp_path / "weights.pt"
    weights.write_bytes(legacy_bomb())
    proc = run_cli("lorsp.train", "--dataset", "sklearn-digits", "--backbone", "resnet18", "--weights", str(weights),
                   "--image-size", "32", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet", timeout=300)
    assert_one_line_error(proc, "weights file declares 3600000000 bytes")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "weights.pt"]


def test_honest_files_in_either_format_pass_the_check(tmp_path):
    state = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4, dtype=torch.int64)[1:], "c": [1, {"d": 2}]}
    for zipped in (True, False):
        path = tmp_path / f"s{zipped}.pt"
        torch.save(state, path, _use_new_zipfile_serialization=zipped)
        check_torch_file(path, "file")
        assert torch.equal(torch.load(path, weights_only=True)["a"], state["a"])
    path.write_bytes(b"not a torch file at all")
    check_torch_file(path, "file")  # left to torch.load, which refuses it
    path.write_bytes(zip_with((tmp_path / "sTrue.pt").read_bytes(), lambda p: declare_numel(p, 7)))
    with pytest.raises(LorspError, match="declares 28 bytes, but the file holds 24"):
        check_torch_file(path, "file")


@pytest.mark.slow
def test_a_tensor_viewing_more_than_its_storage_is_refused_before_any_copy(tmp_path_factory, tmp_path):
    """A stride-0 view of one float saved as 100,000 x 100,000 (a 160 KB resume file that asked for 40 GB at the
    first isfinite, issue 28) is refused by the replay; so is a momentum buffer of it in a resume file."""
    checkpoint = shared_checkpoint(tmp_path_factory)
    state = torch.load(checkpoint.parent / "last.pt", weights_only=True)
    first = next(iter(state["optimizer"]["state"]))
    state["optimizer"]["state"][first]["momentum_buffer"] = torch.zeros(1).expand(100_000, 100_000)
    torch.save(state, tmp_path / "last.pt")
    proc = run_cli("lorsp.train", "--resume", str(tmp_path / "last.pt"), "--out", str(tmp_path / "run"), "--quiet",
                   timeout=300)
    assert_one_line_error(proc, "of shape (100000, 100000) views 4 stored bytes as 40000000000")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.slow
def test_a_message_quoting_a_multi_line_value_stays_one_line(tmp_path_factory, tmp_path):
    state = torch.load(shared_checkpoint(tmp_path_factory).parent / "last.pt", weights_only=True)
    state["history"][0]["train_loss"] = torch.zeros(3, 3)  # its repr spans three lines
    torch.save(state, tmp_path / "last.pt")
    proc = run_cli("lorsp.train", "--resume", str(tmp_path / "last.pt"), "--out", str(tmp_path / "run"), "--quiet",
                   timeout=300)
    assert_one_line_error(proc, "history record 1 train_loss tensor([[0., 0., 0.], [0.")
