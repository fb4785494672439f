"""The bundle spec: in the manifest and as README.md, from the constants the code runs on; other versions refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy import fixed_point, lava_settings
from deploy.bundle import MANIFEST_FILE, open_bundle
from deploy.manifest import SPEC_FORMAT, SPEC_VERSION
from deploy.nir_reader import SNNTORCH_DT
from deploy.onnx_runtime import INPUT_NAME, OUTPUT_NAME
from deploy.spec import README_FILE
from hw_sim.cli import main as hwsim_main
from hw_sim.cosim_cli import main as cosim_main
from lorsp.data.transforms import RESIZE
from lorsp.encoding import ENCODING_VERSION
from lorsp.plumbing.errors import LorspError
from tests.conftest import assert_one_line_error
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
