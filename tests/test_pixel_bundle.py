"""A pixel-gated checkpoint through lorsp-export, open_bundle, lorsp-hwsim and lorsp-cosim (chip_network: pixel-gates).

One tiny model (sklearn-digits at 16 px, one epoch on 32 images) is trained once and exported to a Loihi
bundle and to an ``all`` bundle; each test reads those bundles or a copy it tampers with.
"""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from deploy.bundle import NETX_FILE, open_bundle
from deploy.chip_kinds import PIXEL_GATES
from deploy.manifest_schema import manifest_digest
from deploy.pixel_bundle import PixelGateNetwork
from deploy.pixel_fixed import pixel_gate_integers
from deploy.pixel_gates import PixelGateParameters, pixel_gate_parameters
from hw_sim.cosim_chip import pixel_part
from hw_sim.pixel_twin import twin_integers
from hw_sim.run import rebuild
from lorsp.data import load_split_images
from lorsp.model import model_from_state, read_checkpoint
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import file_sha256
from tests.conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``(checkpoint, loihi bundle, all bundle)`` of one tiny pixel-gated model, each export simulated."""
    root = tmp_path_factory.mktemp("pixel-bundle")
    run = root / "run"
    r = run_cli("lorsp.train", "--dataset", "sklearn-digits", "--prompt", "lorsp", "--gate", "pixel",
                "--train-generator", "all", "--image-size", "16", "--epochs", "1", "--limit-train", "32",
                "--limit-test", "16", "--batch-size", "16", "--device", "cpu", "--quiet", "--out", str(run))
    assert r.returncode == 0, r.stderr
    for target in ("loihi", "all"):
        r = run_cli("pipeline.export_cli", "--target", target, str(run / "model.pt"), "-o", str(root / target),
                    "--samples", "16", "--quiet")
        assert r.returncode == 0, r.stderr
        assert "fixed: 100.00% spikes equal to PyTorch" in r.stdout, r.stdout
    return run / "model.pt", root / "loihi", root / "all"


def resign(root, name: str) -> None:
    """Give the manifest the new sha256 and size of ``name`` and a matching integrity digest (a forger's edit)."""
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["artifacts"][name] = {"sha256": file_sha256(root / name), "bytes": (root / name).stat().st_size}
    manifest["integrity"] = {"sha256": manifest_digest(manifest)}
    path.write_text(json.dumps(manifest))


def test_export_writes_a_pixel_bundle_that_says_what_it_holds(exported):
    _, loihi, everything = exported
    manifest = json.loads((loihi / "manifest.json").read_text())
    assert manifest["chip_network"] == PIXEL_GATES
    assert {"prompt_generator.nir", "prompt_generator.net", "host.safetensors", "README.md"} <= set(manifest["artifacts"])
    assert manifest["network"][0]["neurons"] == 16 * 16 and manifest["network"][0]["kernel"] == [1, 3, 3, 3]
    assert manifest["fixed_point_exact"]["exact"] is True  # the generator learned on the grid
    assert manifest["fixed_point"][0]["du"] == [4095] and manifest["fixed_point"][0]["dv"] == [2048]
    for mode in ("float", "fixed"):
        assert manifest["simulation"][mode]["spike_agreement"] == 1.0
    spec = manifest["spec"]
    assert spec["generator"]["kind"] == PIXEL_GATES and spec["generator"]["output"]["shape"] == [8, "N", 256]
    assert spec["bundle_files"]["runner"]["file"] is None
    assert "chain bundles only" in spec["bundle_files"]["runner"]["why_not_shipped"]
    assert "Spiking prompt generator (chip)" in (loihi / "README.md").read_text()
    assert "backbone.onnx" in json.loads((everything / "manifest.json").read_text())["onnx"]["files"].values()


def test_open_bundle_rebuilds_the_checkpoints_model_bit_for_bit(exported):
    checkpoint, loihi, _ = exported
    bundle = open_bundle(loihi)
    assert bundle.kind == PIXEL_GATES and isinstance(bundle.network, PixelGateNetwork)
    original = model_from_state(read_checkpoint(checkpoint), source=str(checkpoint)).eval()
    rebuilt = rebuild(bundle)
    x, _ = load_split_images("sklearn-digits", 16, 8, None, classes=bundle.manifest["classes"])
    with torch.no_grad():
        assert torch.equal(rebuilt.prompt(x), original.prompt(x))
        assert torch.equal(rebuilt(x), original(x))


def test_the_bundles_integers_are_the_general_fixed_point_paths(exported):
    checkpoint, _, _ = exported
    trained = pixel_gate_parameters(model_from_state(read_checkpoint(checkpoint), source=str(checkpoint)).prompt)
    rng = np.random.default_rng(0)
    off_grid = PixelGateParameters(weight=rng.normal(0, 0.3, (1, 3, 5, 5)).astype(np.float32),
                                   drive=rng.normal(0.4, 0.3, (1, 12, 12)).astype(np.float32), beta=0.5,
                                   threshold=1.0, padding=(2, 2), time_steps=8)
    for params in (trained, off_grid):
        ours, twin = pixel_gate_integers(params), twin_integers(params)
        for name in ("weight", "bias_mant", "vth", "du", "dv", "scale", "padding", "time_steps"):
            assert np.array_equal(np.asarray(getattr(ours, name)), np.asarray(getattr(twin, name))), name


def test_hwsim_runs_the_gates_on_the_graph_path_exactly_in_both_modes(exported, tmp_path):
    _, loihi, _ = exported
    r = run_cli("hw_sim.cli", str(loihi), "--mode", "both", "--backend", "fast", "--samples", "16",
                "-o", str(tmp_path / "report"), "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["chip_network"] == PIXEL_GATES and set(report["runs"]) == {"float", "fixed"}
    for run in report["runs"].values():
        f = run["fidelity"]
        assert f["spikes"]["exact"] and f["prompt_max_abs_diff"] == 0.0 and f["prediction_agreement"] == 1.0
        assert run["activity"]["synops_total_per_image"] > 0
        assert {e["table"] for e in run["energy"]} >= {"loihi-davies2018"}
    assert report["runs"]["fixed"]["fixed_point_exact"]["exact"] is True
    assert report["runs"]["float"]["activity"] == report["runs"]["fixed"]["activity"]  # same spikes, same counts
    assert (tmp_path / "report" / "report.html").is_file() and (tmp_path / "report" / "energy.png").is_file()


@pytest.mark.lava
def test_hwsim_lava_runs_the_gates_in_lava_as_the_graph_path_does(exported, tmp_path):
    _, loihi, _ = exported
    r = run_cli("hw_sim.cli", str(loihi), "--mode", "both", "--backend", "lava", "--samples", "4",
                "-o", str(tmp_path / "report"), "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    for mode in ("float", "fixed"):
        assert report["runs"][mode]["fidelity"]["spikes"]["exact"]
        assert report["lava"][mode]["ran"] and all(n["exact"] for n in report["lava"][mode]["per_node"])


def test_cosim_in_fixed_point_agrees_with_pytorch_on_every_image(exported, tmp_path):
    _, _, everything = exported
    bundle = tmp_path / "all"
    shutil.copytree(everything, bundle)
    r = run_cli("hw_sim.cosim_cli", str(bundle), "--mode", "fixed", "--precision", "fp32", "--limit", "32",
                "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((bundle / "cosim" / "cosim.json").read_text())
    assert report["agreement"]["share"] == 1.0 and report["spikes"]["exact"]
    stages = {s["stage"]: s for s in report["energy"]["stages"]}
    assert set(stages) == {"encode", "generator", "prompt", "backbone"} and stages["generator"]["pj"] > 0
    with pytest.raises(LorspError, match="NIR graph path"):  # Lava checks the gates in lorsp-hwsim, not here
        pixel_part(open_bundle(everything).network, "lava", "fixed", 10.0)


def test_a_tampered_file_is_refused_in_one_line(exported, tmp_path):
    _, loihi, _ = exported
    flipped = tmp_path / "flipped"
    shutil.copytree(loihi, flipped)
    data = bytearray((flipped / NETX_FILE).read_bytes())
    data[-100] ^= 1
    (flipped / NETX_FILE).write_bytes(bytes(data))
    assert_one_line_error(run_cli("hw_sim.cli", str(flipped), "-o", str(tmp_path / "r1")), "sha256")

    forged = tmp_path / "forged"  # the netx file rewritten with one bias off by one, and the manifest re-signed
    shutil.copytree(loihi, forged)
    with h5py.File(forged / NETX_FILE, "r+") as f:
        bias = f["layer/1/bias"][()]
        bias[0, 0, 0] += 1
        f["layer/1/bias"][...] = bias
    resign(forged, NETX_FILE)
    assert_one_line_error(run_cli("hw_sim.cli", str(forged), "-o", str(tmp_path / "r2")),
                          "layer/1/bias differs from the fixed-point form")

    unnamed = tmp_path / "unnamed"  # the manifest's kind dropped (re-signed): read as a chain, the graph is refused
    shutil.copytree(loihi, unnamed)
    manifest = json.loads((unnamed / "manifest.json").read_text())
    del manifest["chip_network"]
    manifest["integrity"] = {"sha256": manifest_digest(manifest)}
    (unnamed / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(run_cli("hw_sim.cli", str(unnamed), "-o", str(tmp_path / "r3")), "nonzero v_leak")
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))
