"""The bundle spec: in the manifest and as README.md, from the constants the code runs on; other versions refused;
its words about the files (integrity, file list, netx from NIR, names) checked against the files themselves."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from deploy import fixed_point, lava_settings
from deploy.bundle import MANIFEST_FILE, open_bundle
from deploy.manifest import SPEC_FORMAT, SPEC_VERSION
from deploy.nir_reader import SNNTORCH_DT
from deploy.onnx_runtime import INPUT_NAME, OUTPUT_NAME
from deploy.outputs import COSIM_DIR
from deploy.spec import README_FILE
from hw_sim.cli import main as hwsim_main
from hw_sim.cosim_cli import main as cosim_main
from lorsp.data.transforms import RESIZE
from lorsp.encoding import ENCODING_VERSION
from lorsp.plumbing.errors import LorspError
from tests.conftest import ROOT, assert_one_line_error
from tests.deploy_helpers import call_cli, linked_copy, rewrite, shared_all_bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return shared_all_bundle(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def manifest(bundle) -> dict:
    return json.loads((bundle / MANIFEST_FILE).read_text())


@pytest.mark.slow
def test_spec_carries_the_numbers_the_code_runs_on(bundle, manifest):
    spec, opened = manifest["spec"], open_bundle(bundle)
    assert spec["format"] == SPEC_FORMAT and spec["version"] == SPEC_VERSION == 1
    T = opened.host.time_steps
    enc = spec["encode"]
    assert (enc["name"], enc["size"], enc["time_steps"], enc["version"]) == \
        (opened.host.encoding.name, opened.host.encoding.size, T, ENCODING_VERSION)
    gen = spec["generator"]
    assert gen["dt"] == SNNTORCH_DT and gen["time_steps"] == T
    assert gen["lava"]["netx_network"] == {"reset_interval": T, "reset_offset": lava_settings.NETX_RESET_OFFSET}
    assert gen["lava"]["reset_offset_per_layer"] == [2, 3]  # what hw_sim's Lava backend gives its LIFReset
    assert gen["lava"]["delay_per_layer"] == 1 and gen["lava"]["output_lag"] == 2
    fixed = gen["fixed_point"]
    assert [l["scale"] for l in fixed["layers"]] == [f["scale"] for f in manifest["fixed_point"]]
    assert [l["scale"] for l in fixed["layers"]] == opened.host.fixed_point_scale.tolist()
    assert fixed["state_shift"] == fixed_point.STATE_SHIFT and fixed["bias_exp"] == fixed_point.BIAS_EXP
    assert fixed["exact"] is True is manifest["fixed_point_exact"]["exact"]  # the default model: the chip is exact
    assert [l["exact"] for l in fixed["layers"]] == [l["exact"] for l in manifest["fixed_point_exact"]["layers"]]
    assert [l["neurons"] for l in gen["layers"]] == opened.network.sizes
    prompt = spec["prompt"]
    assert prompt["gates"] == opened.network.sizes[-1] == 2 * 16 * 4 and prompt["gate"] == "band"
    assert "at least once" in prompt["gate_rule"]
    assert spec["preprocess"]["resize"] == RESIZE and spec["preprocess"]["image_size"] == 32
    assert spec["preprocess"]["normalisation_inside_onnx"]["mean"] == [0.5, 0.5, 0.5]
    onnx = spec["backbone"]
    assert onnx["input"]["name"] == INPUT_NAME and onnx["output"]["name"] == OUTPUT_NAME
    assert onnx["files"] == manifest["onnx"]["files"] and spec["classes"] == manifest["classes"]


@pytest.mark.slow
def test_every_bundle_has_a_readme_listed_in_the_manifest(bundle, manifest):
    text = (bundle / README_FILE).read_text()
    assert README_FILE in manifest["artifacts"]
    spec = manifest["spec"]
    assert f"bundle spec version {SPEC_VERSION}" in text
    scale = spec["generator"]["fixed_point"]["layers"][0]["scale"]
    for fragment in ("reset_interval", "\"reset_offset\": 1", "at least once", "get_providers()",
                     f"| dt | {SNNTORCH_DT} |", f"\"scale\": {scale}", "| exact | true |", "bit for bit"):
        assert fragment in text, fragment


def _with_spec_version(bundle: Path, dst: Path, version) -> Path:
    copy = linked_copy(bundle, dst)
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    if version is None:
        del manifest["spec"]
    else:
        manifest["spec"]["version"] = version
    rewrite(copy / MANIFEST_FILE, json.dumps(manifest).encode())
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("version,shown", [(0, "version 0"), (None, "version none"), (99, "version 99")])
def test_a_bundle_of_another_spec_version_is_refused_naming_both(bundle, tmp_path, capsys, version, shown):
    old = _with_spec_version(bundle, tmp_path / "old", version)
    with pytest.raises(LorspError, match=f"spec {shown}.*reads spec version {SPEC_VERSION}"):
        open_bundle(old)
    for main, extra in ((cosim_main, ["--limit", "2"]), (hwsim_main, ["--samples", "2"])):
        proc = call_cli(main, capsys, str(old), *extra, "-o", str(tmp_path / "out"), "--quiet")
        assert_one_line_error(proc, shown, f"reads spec version {SPEC_VERSION}")
        assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_integrity_and_the_file_list_follow_the_documented_rules(bundle, manifest):
    """integrity.sha256 recomputed by bundle_files.integrity's words; artifacts = every file on disk, by the rule."""
    files = manifest["spec"]["bundle_files"]
    assert "sort_keys=True, separators=(',', ':'), ensure_ascii=True" in files["integrity"]
    body = {k: v for k, v in manifest.items() if k != "integrity"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    assert hashlib.sha256(canonical).hexdigest() == manifest["integrity"]["sha256"]
    on_disk = {p.relative_to(bundle).as_posix(): p for p in bundle.rglob("*") if p.is_file()}
    assert set(manifest["artifacts"]) == set(on_disk) - {files["manifest"]}
    assert any(name.startswith("hw_sim/") for name in manifest["artifacts"])  # the export's own simulation: listed
    for name, entry in manifest["artifacts"].items():
        data = on_disk[name].read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert f"{COSIM_DIR}/" in files["not_listed"] and "integrity does not cover" in files["not_listed"]


def _nir_nodes(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {name: {k: g[k][()] for k in g.keys()} for name, g in f["node"]["nodes"].items()}


@pytest.mark.slow
def test_the_netx_integers_follow_from_the_nir_file_by_the_documented_formulas(bundle, manifest):
    """Per layer, by the names the spec gives it: netx weight = scale W (out, in), bias mantissa = scale b (the chip
    adding b_m 2^bias_exp), vThMant = scale theta, iDecay = du + 1 (du the manifest's), vDecay = 4096 (1 - beta)."""
    gen = manifest["spec"]["generator"]
    layout, fixed = gen["file_layout"], gen["fixed_point"]
    assert "(out, in)" in layout["weight_orientation"] and "b_m 2^bias_exp" in layout["netx_from_nir"]
    assert "du + 1" in layout["decay_registers"] and "refDelay = 1" in layout["netx_unread"]
    assert gen["delay_between_layers"] == 0 and "no delay between layers" in gen["neuron"]
    nodes = _nir_nodes(bundle / gen["files"]["nir"])
    names = [l["name"] for l in gen["layers"]]
    assert names == [l["name"] for l in fixed["layers"]] == [l["name"] for l in manifest["network"]] \
        == [l["name"] for l in manifest["fixed_point"]] == [l["name"] for l in manifest["fixed_point_exact"]["layers"]]
    with h5py.File(bundle / gen["files"]["netx"], "r") as netx:
        assert sorted(netx["layer"]) == ["0"] + [l["netx_group"].split("/")[1] for l in gen["layers"]]
        for k, (layer, fx, mfx) in enumerate(zip(gen["layers"], fixed["layers"], manifest["fixed_point"])):
            affine, lif = (nodes[n] for n in layer["nir_nodes"])
            assert (affine["type"], lif["type"]) == (b"Affine", b"LIF") and layer["nir_nodes"][1] == layer["name"]
            assert layer["netx_group"] == fx["netx_group"] == f"layer/{k + 1}" and layer["index"] == k
            group = netx[layer["netx_group"]]
            W, b = affine["weight"].astype(np.float64), affine["bias"].astype(np.float64)
            scale = fx["scale"]
            assert W.shape == (layer["neurons"], layer["inputs"]) == group["weight"].shape  # (out, in) in both
            mixed = W.min() < 0 < W.max()
            expected = 2 * np.round(scale * W / 2) if mixed else np.round(scale * W)
            assert np.array_equal(group["weight"][()], expected)
            assert np.array_equal(group["bias"][()], np.round(scale * b))
            assert np.array_equal(group["weight"][()] / scale, W) and np.array_equal(group["bias"][()] / scale, b)
            assert group["bias"][()].min() < 0 or k == 0  # the shared model's gate layer has a real (negative) bias
            neuron = group["neuron"]
            assert int(neuron["vThMant"][()]) == fx["vth"] == round(scale * float(lif["v_threshold"].max()))
            assert int(neuron["iDecay"][()]) == fx["iDecay"] == fx["du"] + 1 == mfx["du"][0] + 1 == 4096  # alpha = 0
            beta = 1 - float(np.asarray(gen_dt(manifest)) / lif["tau"][0].astype(np.float64))
            assert int(neuron["vDecay"][()]) == fx["vDecay"] == round(4096 * (1 - beta)) == mfx["dv"][0]
            assert int(neuron["refDelay"][()]) == 1 and not bool(neuron["gradedSpike"][()])


def gen_dt(manifest: dict) -> float:
    return manifest["spec"]["generator"]["dt"]


@pytest.mark.slow
def test_the_readme_names_the_layouts_the_arithmetic_and_only_files_that_exist(bundle, manifest):
    text = (bundle / README_FILE).read_text()
    for fragment in ("(out, in)", "b_m 2^bias_exp", "iDecay (the netx file and the tables here) = du + 1",
                     "refDelay = 1", "no refractory period", "no delay between layers", "first along the width",
                     "fused multiply-add", "p = fma(l_k, r_k, p)", "integrity.sha256 = sha256", "not its position in",
                     "`cosim/cosim_images.safetensors`", "layer 1 (layer/1)", "\"netx_group\": \"layer/2\""):
        assert fragment in text, fragment
    runner = manifest["spec"]["bundle_files"]["runner"]
    assert runner["file"] == "run_bundle.py" and runner["file"] in manifest["artifacts"]
    assert (bundle / runner["file"]).read_bytes() == (ROOT / "examples" / "run_bundle.py").read_bytes()
    later = manifest["spec"]["bundle_files"]["cosim_images"]["file"]
    named = set(re.findall(r"`([\w./-]+\.(?:py|nir|net|onnx|safetensors|json|md|html|png))`", text))
    assert {"run_bundle.py", "prompt_generator.nir", "prompt_generator.net", later} <= named
    for name in named:  # every file the README names in code is in the bundle, or is the documented later output
        assert name in manifest["artifacts"] or name == later or (name == MANIFEST_FILE and (bundle / name).is_file()), name
    assert "examples/lava_dl_netx.py in lorsp's source tree, not in this bundle" in text
