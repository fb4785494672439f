"""Paths a file stores are data (issue 28: a checkpoint naming ``weights: /etc/shadow`` had it opened, and told
whether it exists; a config or manifest naming a private ``imagefolder:`` ran on it). A stored weights file, data
folder or image folder is opened only when the command names it (``--weights``, ``--data-root``, ``--dataset``;
``lorsp.load(path, weights=...)``); otherwise one line names the flag to pass, exit code 2, nothing written."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import lorsp
from deploy.bundle import MANIFEST_FILE
from deploy.manifest_schema import manifest_digest
from lorsp.backbones import BACKBONES
from tests.conftest import assert_one_line_error, run_cli
from tests.test_export_loihi import shared_bundle, shared_checkpoint


def fifo(path: Path) -> Path:
    """A FIFO at ``path``: opening it would block, or be refused as no regular file; neither may happen."""
    os.mkfifo(path)
    return path


def with_config(source: Path, dst: Path, **changes) -> Path:
    state = torch.load(source, weights_only=True)
    state["config"].update(changes)
    torch.save(state, dst)
    return dst


@pytest.mark.slow
def test_stored_weights_are_never_opened_unless_named(tmp_path_factory, tmp_path):
    stored = fifo(tmp_path / "shadow.safetensors")
    checkpoint = with_config(shared_checkpoint(tmp_path_factory), tmp_path / "model.pt", weights=str(stored))
    for module, args in (("pipeline.export_cli", ("--target", "loihi", str(checkpoint), "--no-simulate")),):
        proc = run_cli(module, *args, "-o", str(tmp_path / "out"), timeout=300)
        assert_one_line_error(proc, f"names backbone weights '{stored}'", "pass --weights FILE")
        assert "FIFO" not in proc.stderr
    with pytest.raises(lorsp.LorspError, match="pass --weights FILE"):
        lorsp.load(checkpoint)
    packaged = BACKBONES.get("efficientnet_lite0").weights.path()  # the file the tiny model was trained with
    assert lorsp.load(checkpoint, weights=packaged).config["weights"] == str(packaged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "shadow.safetensors"]


@pytest.mark.slow
def test_a_resume_file_naming_weights_needs_them_typed(tmp_path_factory, tmp_path):
    stored = fifo(tmp_path / "w.safetensors")
    last = with_config(shared_checkpoint(tmp_path_factory).parent / "last.pt", tmp_path / "last.pt",
                       weights=str(stored))
    proc = run_cli("lorsp.train", "--resume", str(last), "--out", str(tmp_path / "run"), "--quiet", timeout=300)
    assert_one_line_error(proc, "names backbone weights", "pass --weights FILE")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "w.safetensors"]


@pytest.mark.slow
def test_a_stored_data_folder_or_image_folder_is_read_only_when_named(tmp_path_factory, tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    source = shared_checkpoint(tmp_path_factory)
    rooted = with_config(source, tmp_path / "rooted.pt", dataset="cifar10", data_root=str(private))
    foldered = with_config(source, tmp_path / "foldered.pt", dataset=f"imagefolder:{private}")
    export = ("pipeline.export_cli", "--target", "loihi", "--no-simulate", "-o", str(tmp_path / "out"))
    assert_one_line_error(run_cli(*export, str(rooted), timeout=300),
                          f"names data folder '{private}' for cifar10", "pass --data-root DIR")
    assert_one_line_error(run_cli(*export, str(foldered), timeout=300),
                          f"names data set 'imagefolder:{private}'", f"pass --dataset imagefolder:{private}")
    named = tmp_path / "named"
    named.mkdir()
    assert_one_line_error(run_cli(*export, str(rooted), "--data-root", str(named), timeout=300),
                          f"{named}/cifar-10-batches-py not found")  # the named folder is the one read
    offline = with_config(source, tmp_path / "offline.pt", data_root=str(private))  # sklearn-digits reads none
    proc = run_cli(*export, str(offline), "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())["config"]["data_root"] is None


def resealed(bundle: Path, dst: Path, **changes) -> Path:
    shutil.copytree(bundle, dst)
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    manifest["config"].update(changes)
    manifest.pop("integrity")
    manifest["integrity"] = {"sha256": manifest_digest(manifest)}
    (dst / MANIFEST_FILE).write_text(json.dumps(manifest))
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("module", ["hw_sim.cli", "hw_sim.cosim_cli"])
def test_a_bundle_naming_paths_is_read_only_with_them_named(tmp_path_factory, tmp_path, module):
    private = tmp_path / "private"
    private.mkdir()
    bundle = shared_bundle(tmp_path_factory)
    cases = [(resealed(bundle, tmp_path / "w", weights=str(fifo(tmp_path / "w.safetensors"))), "pass --weights FILE"),
             (resealed(bundle, tmp_path / "f", dataset=f"imagefolder:{private}"), "pass --dataset imagefolder:"),
             (resealed(bundle, tmp_path / "r", dataset="cifar10", data_root=str(private)), "pass --data-root DIR")]
    for root, fragment in cases:
        proc = run_cli(module, str(root), "-o", str(tmp_path / "out"), "--quiet", timeout=300)
        assert_one_line_error(proc, fragment)
        assert "FIFO" not in proc.stderr
    assert not (tmp_path / "out").exists()
