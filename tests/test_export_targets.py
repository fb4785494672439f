"""lorsp-export --target onnx and --target all: one manifest, parity, accuracy per precision, refusals."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.export_cli import main as export_main
from deploy.onnx_runtime import ONNX_FILES
from export.onnx_checks import FP32_TOLERANCE
from export.onnx_target import export_onnx
from deploy.bundle import HOST_FILE, MANIFEST_FILE, NETX_FILE, NIR_FILE, open_bundle
from deploy.manifest import SPEC_VERSION
from deploy.spec import README_FILE
from lorsp.data import create_splits
from lorsp.plumbing.fileio import file_sha256
from lorsp.model import build_model
from tests.conftest import assert_one_line_error, run_cli
from tests.deploy_helpers import CHECK_SAMPLES, call_cli, shared_all_bundle
from tests.test_export_loihi import shared_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return shared_checkpoint(tmp_path_factory)


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> tuple[Path, str]:
    return shared_all_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def lorvp_checkpoint(checkpoint, tmp_path_factory) -> Path:
    """A LoR-VP checkpoint of the same config: a prompt without a spiking generator."""
    state = torch.load(checkpoint, weights_only=True)
    path = tmp_path_factory.mktemp("lorvp") / "lorvp.pt"
    torch.save(build_model({**state["config"], "prompt": "lorvp"}, state["classes"]).checkpoint_state(), path)
    return path


@pytest.mark.slow
def test_all_writes_both_targets_under_one_manifest_that_lists_every_file(exported, checkpoint):
    bundle, stdout = exported
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {MANIFEST_FILE}
    assert set(manifest["artifacts"]) == on_disk
    assert {NIR_FILE, NETX_FILE, HOST_FILE, *ONNX_FILES.values(), "hw_sim/report.html"} <= on_disk
    assert [p.name for p in bundle.iterdir() if p.name == MANIFEST_FILE] == [MANIFEST_FILE]
    for name, entry in manifest["artifacts"].items():
        assert file_sha256(bundle / name) == entry["sha256"], name
    assert manifest["target"] == "all" and manifest["source_checkpoint"]["sha256"] == file_sha256(checkpoint)
    assert manifest["checks"]["round_trip"]["agreement"] == 1.0
    assert manifest["simulation"]["float"]["spike_agreement"] == 1.0
    onnx = manifest["onnx"]
    assert onnx["files"] == ONNX_FILES and onnx["macs_per_image"] > 1e6
    assert onnx["parity"]["fp32"]["samples"] == CHECK_SAMPLES
    assert onnx["parity"]["fp32"]["max_abs_logit_diff"] <= FP32_TOLERANCE
    assert onnx["parity"]["fp32"]["prediction_agreement"] == 1.0
    val = len(create_splits("sklearn-digits", 32).val)
    for precision in ONNX_FILES:
        accuracy = onnx["accuracy"][precision]
        assert accuracy["samples"] == val and 0.0 <= accuracy["accuracy"] <= 1.0
        assert accuracy["drop_vs_fp32"] == pytest.approx(onnx["accuracy"]["fp32"]["accuracy"] - accuracy["accuracy"])
    fp32_line = next(line for line in stdout.splitlines() if line.startswith("ONNX fp32 parity"))
    assert f"{onnx['parity']['fp32']['max_abs_logit_diff']:.3g}" in fp32_line and "allowed 0.0001" in fp32_line
    assert "NIR round trip: 100.00%" in stdout and "ONNX int8 accuracy" in stdout
    opened = open_bundle(bundle)  # what lorsp-hwsim and lorsp-cosim read
    c = manifest["config"]  # band gating: row and column gates per term and band
    assert opened.network.sizes[-1] == 2 * c["gates"] * c["rank"] and c["gate"] == "band"


@pytest.mark.slow
def test_onnx_target_takes_a_prompt_without_spiking_generator(lorvp_checkpoint, tmp_path):
    out = tmp_path / "onnx"
    manifest = export_onnx(lorvp_checkpoint, out, samples=8)
    assert sorted(p.name for p in out.iterdir()) == [README_FILE, ONNX_FILES["fp32"], MANIFEST_FILE]
    assert set(manifest["artifacts"]) == {ONNX_FILES["fp32"], README_FILE}
    assert manifest["target"] == "onnx" and manifest["config"]["prompt"] == "lorvp"
    spec = manifest["spec"]  # an ONNX-only bundle's spec: preprocessing, the prompt left to lorsp, the backbone
    assert spec["version"] == SPEC_VERSION and spec["prompt"]["method"] == "lorvp" and "encode" not in spec
    assert spec["backbone"]["files"] == {"fp32": ONNX_FILES["fp32"]}
    assert "bundle spec version" in (out / README_FILE).read_text()
    assert manifest["onnx"]["parity"]["fp32"]["max_abs_logit_diff"] <= FP32_TOLERANCE
    assert set(manifest["onnx"]["accuracy"]) == {"fp32"}
    assert not out.with_name("onnx.partial").exists()


@pytest.mark.slow
def test_an_unavailable_provider_is_one_line_and_writes_nothing(checkpoint, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("pipeline.export_cli", "--target", "onnx", str(checkpoint), "-o", str(out), "--providers", "tensorrt")
    assert_one_line_error(proc, "TensorrtExecutionProvider", "not available", "CPUExecutionProvider")
    assert not out.exists() and not out.with_name("out.partial").exists()


@pytest.mark.slow
@pytest.mark.parametrize("target,source,options,fragments", [
    ("all", "lorsp", ["--providers", "cpu", "cuda"], ["CUDAExecutionProvider", "not available"]),
    ("loihi", "lorsp", ["--precision", "int8"], ["--precision does not apply to --target loihi"]),
    ("onnx", "lorsp", ["--no-simulate"], ["--no-simulate does not apply to --target onnx"]),
    ("all", "lorvp", [], ["'lorvp' checkpoint", "--target all needs one whose prompt has a spiking generator"]),
])
def test_refusals_are_one_line_and_write_nothing(checkpoint, lorvp_checkpoint, tmp_path, capsys, target, source,
                                                 options, fragments):
    out = tmp_path / "out"
    model = {"lorsp": checkpoint, "lorvp": lorvp_checkpoint}[source]
    proc = call_cli(export_main, capsys, "--target", target, str(model), "-o", str(out), *options)
    assert_one_line_error(proc, *fragments)
    assert not out.exists() and not out.with_name("out.partial").exists()


@pytest.mark.slow
def test_onnx_target_refuses_an_existing_output_without_force(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    proc = call_cli(export_main, capsys, "--target", "onnx", str(checkpoint), "-o", str(out))
    assert_one_line_error(proc, "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
