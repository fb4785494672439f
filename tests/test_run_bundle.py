"""examples/run_bundle.py (and its copy in every bundle): a bundle run from its spec alone, with lorsp, torch and Lava
unimportable, against lorsp-cosim; its preprocessing and prompt sum against lorsp's, bit for bit."""
from __future__ import annotations

import json
import runpy
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from packaging.version import Version
from safetensors.numpy import load_file

from deploy.bundle import MANIFEST_FILE
from deploy.manifest import SPEC_VERSION
from deploy.outputs import COSIM_DIR
from hw_sim.cosim_cli import main as cosim_main
from hw_sim.cosim_images import IMAGES_FILE
from lorsp.data import load_split_images
from lorsp.data.registry import load_source
from lorsp.data.transforms import ToModelInput
from tests.conftest import ROOT, assert_one_line_error
from tests.deploy_helpers import LORSP_PACKAGES, call_cli, linked_copy, rewrite, run_isolated, shared_all_bundle

RUNNER = ROOT / "examples" / "run_bundle.py"
SHRINK_EXACT_UP_TO = Version("2.3.1")
"""The newest torch on which the runner's resize is measured bit-exact also where an axis shrinks (27 of 27 size
checks; on 2.14.1 7 of 27 differ by at most one unit in the last place, each with a shrinking axis; docs/install.md).
Which release in between changed is not measured."""
SAMPLES = 128


def run_without_lorsp(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The runner in an interpreter where lorsp's packages, PyTorch and Lava cannot be imported."""
    return run_isolated(RUNNER, *args, blocked=LORSP_PACKAGES + ("torch", "torchvision", "lava", "snntorch", "nir",
                                                               "nirtorch"), timeout=timeout)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return shared_all_bundle(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """The first SAMPLES test images, preprocessed as the spec says (lorsp's loader, in this process)."""
    x, _ = load_split_images("sklearn-digits", 32, SAMPLES)
    path = tmp_path_factory.mktemp("images") / "x.npy"
    np.save(path, x.numpy())
    return path


@pytest.mark.slow
@pytest.mark.parametrize("mode,precision", [("fixed", "fp32"), ("fixed", "int8"), ("float", "fp32")])
def test_the_runner_reproduces_cosim_bit_for_bit_without_lorsp(bundle, images, tmp_path, capsys, mode, precision):
    proc = call_cli(cosim_main, capsys, str(bundle), "--limit", str(SAMPLES), "--mode", mode, "--precision", precision,
                    "-o", str(tmp_path / "cosim"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    cosim = load_file(str(tmp_path / "cosim" / IMAGES_FILE))
    out = tmp_path / "runner.safetensors"
    run = run_without_lorsp(str(bundle), "--images", str(images), "--mode", mode, "--precision", precision,
                            "--out", str(out), "--compare", str(tmp_path / "cosim" / IMAGES_FILE))
    assert run.returncode == 0, run.stderr[-3000:]
    for what in ("gates", "prompted images", "predictions"):
        assert f"{what} equal to lorsp-cosim's: {SAMPLES}/{SAMPLES} images" in run.stdout
    ours = load_file(str(out))
    assert len(ours["pred"]) == len(cosim["index"]) == SAMPLES
    assert np.array_equal(ours["gate_counts"], cosim["gate_counts"])
    assert np.array_equal(ours["gates"], cosim["gates"]) and 0 < ours["gates"].mean() < 1
    assert np.array_equal(ours["prompted_sha256"], cosim["prompted_sha256"])  # prompted images bit for bit
    assert np.array_equal(ours["pred"], cosim["pred_pipeline"])
    assert np.abs(ours["logits"] - cosim["logits_pipeline"]).max() <= 1e-5


@pytest.mark.slow
def test_the_runner_reads_uint8_pixels_as_the_spec_says(bundle, images, tmp_path):
    x = np.load(images)
    pixels = np.round(x[:, 0] * 255).astype(np.uint8)  # digits are grey: one channel of pixels
    np.save(tmp_path / "p.npy", pixels)
    np.save(tmp_path / "f.npy", np.repeat((pixels.astype(np.float32) / np.float32(255))[:, None], 3, axis=1))
    for name in ("p", "f"):
        run = run_without_lorsp(str(bundle), "--images", str(tmp_path / f"{name}.npy"), "--out",
                                str(tmp_path / f"{name}.safetensors"))
        assert run.returncode == 0, run.stderr[-2000:]
    a, b = load_file(str(tmp_path / "p.safetensors")), load_file(str(tmp_path / "f.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_the_runner_refuses_another_spec_version_and_bad_input_with_one_line(bundle, images, tmp_path):
    assert runpy.run_path(str(RUNNER))["SPEC_VERSION"] == SPEC_VERSION
    old = linked_copy(bundle, tmp_path / "old")
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    manifest["spec"]["version"] = 0
    rewrite(old / MANIFEST_FILE, json.dumps(manifest).encode())
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 16, 16), np.float32))
    existing = tmp_path / "exists.safetensors"
    existing.write_bytes(b"keep")
    for args, fragments in (([str(old), "--images", str(images)], ["spec version 0", f"reads spec version {SPEC_VERSION}"]),
                            ([str(bundle), "--images", str(bad)], ["(N, 3, 32, 32)"]),
                            ([str(bundle), "--images", str(images), "--precision", "fp64"], ["no fp64 backbone"])):
        out = tmp_path / "out.safetensors"
        assert_one_line_error(run_without_lorsp(*args, "--out", str(out)), *fragments)
        assert not out.exists()
    assert_one_line_error(run_without_lorsp(str(bundle), "--images", str(images), "--out", str(existing)), "--force")
    assert existing.read_bytes() == b"keep"
    for out in (bundle / "host.safetensors", bundle / MANIFEST_FILE, images):
        before = out.read_bytes()
        assert_one_line_error(run_without_lorsp(str(bundle), "--images", str(images), "--out", str(out), "--force"),
                              "an input of this run")
        assert out.read_bytes() == before


@pytest.mark.slow
def test_the_runner_refuses_a_hostile_manifest_in_one_line(bundle, images, tmp_path):
    good = json.loads((bundle / MANIFEST_FILE).read_text())
    outside = tmp_path / "secret.txt"
    outside.write_text("not the bundle's")

    def escape(m):
        m["artifacts"]["../secret.txt"] = {"sha256": "0" * 64, "bytes": 1}

    def no_prompt(m):
        del m["spec"]["prompt"]

    for k, (edit, fragment) in enumerate(((escape, "is not a file inside the bundle"),
                                          (lambda m: m.__setitem__("artifacts", "all"), "artifacts must map"),
                                          (no_prompt, "spec is malformed"))):
        root = linked_copy(bundle, tmp_path / f"b{k}")
        manifest = json.loads(json.dumps(good))
        edit(manifest)
        rewrite(root / MANIFEST_FILE, json.dumps(manifest).encode())
        out = tmp_path / f"out{k}.safetensors"
        assert_one_line_error(run_without_lorsp(str(root), "--images", str(images), "--out", str(out)), fragment)
        assert not out.exists()


@pytest.mark.slow
def test_the_bundles_own_runner_reproduces_cosim_from_inside_the_bundle_on_the_data_sets_pixels(bundle, tmp_path, capsys):
    """The copy of the runner in the bundle, run from the bundle's directory outside the repository, on the data
    set's raw 8 x 8 pixels at cosim's ``index`` (resized by the runner as the spec says), after lorsp-cosim wrote
    its report into the bundle (not listed in the manifest; the bundle still verifies): every image agrees."""
    copy = linked_copy(bundle, tmp_path / "b")
    proc = call_cli(cosim_main, capsys, str(copy), "--limit", "64", "--quiet")  # default output: DIR/cosim
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    files = manifest["spec"]["bundle_files"]
    on_disk = {p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()}
    unlisted = on_disk - set(manifest["artifacts"]) - {MANIFEST_FILE}
    assert unlisted and all(name.startswith(f"{COSIM_DIR}/") for name in unlisted)  # what the spec says is not listed
    assert files["cosim_images"]["file"] in unlisted
    report = json.loads((copy / COSIM_DIR / "cosim.json").read_text())
    assert report["bundle"]["manifest_integrity"] == manifest["integrity"]["sha256"]
    cosim = load_file(str(copy / files["cosim_images"]["file"]))
    source = load_source(files["cosim_images"]["dataset"])
    assert source.test is None  # sklearn-digits has one list: index indexes it, not the split
    assert not np.array_equal(cosim["index"], np.arange(len(cosim["index"])))
    pixels = np.stack([np.asarray(source.train[int(i)][0]) for i in cosim["index"]])
    assert pixels.dtype == np.uint8 and pixels.shape[1:] == (8, 8)
    assert [int(source.train[int(i)][1]) for i in cosim["index"]] == cosim["label"].tolist()
    np.save(tmp_path / "pixels.npy", pixels)
    runner = copy / files["runner"]["file"]
    run = run_isolated(runner, ".", "--images", str(tmp_path / "pixels.npy"), "--out", str(tmp_path / "r.safetensors"),
                       "--compare", files["cosim_images"]["file"],
                       blocked=LORSP_PACKAGES + ("torch", "torchvision", "lava", "snntorch", "nir", "nirtorch"), cwd=copy)
    assert run.returncode == 0, run.stderr[-3000:]
    for what in ("gates", "prompted images", "predictions"):
        assert f"{what} equal to lorsp-cosim's: 64/64 images" in run.stdout


def test_the_runner_preprocesses_and_sums_the_prompt_bit_for_bit_as_lorsp(tmp_path):
    """The spec's resize arithmetic (width first, fused multiply-adds) and prompt sum order, as the runner codes
    them, against lorsp's transform and PyTorch's matmul: up and down, square or not, grey or colour."""
    runner = runpy.run_path(str(RUNNER))
    rng = np.random.default_rng(0)
    shrinking_exact = Version(torch.__version__.split("+")[0]) <= SHRINK_EXACT_UP_TO
    for H, W, L in [(28, 28, 128), (8, 8, 32), (28, 28, 20), (50, 37, 64), (5, 90, 16), (300, 200, 128), (32, 32, 32),
                    *[tuple(int(v) for v in rng.integers(3, 80, 2)) + (int(rng.integers(8, 100)),) for _ in range(20)]]:
        for pixels in (rng.integers(0, 256, (2, H, W)), rng.integers(0, 256, (2, 3, H, W))):
            pixels = pixels.astype(np.uint8)
            ours = runner["preprocess"](pixels, L)
            lorsp = torch.stack([ToModelInput(L)(p if p.ndim == 2 else p.transpose(1, 2, 0)) for p in pixels]).numpy()
            if shrinking_exact or (H <= L and W <= L):
                assert np.array_equal(ours, lorsp), (H, W, L)
            else:  # the spec's narrowed promise: an axis that shrinks may differ in the last bit on newer torch
                assert np.abs(ours - lorsp).max() <= np.spacing(np.float32(1.0)), (H, W, L)
    for shape_l, shape_r in (((4, 3, 32, 4), (4, 1, 4, 32)), ((2, 3, 128, 8), (2, 3, 8, 128)), ((3, 64, 16), (1, 16, 64))):
        left, right = rng.normal(size=shape_l).astype(np.float32), rng.normal(size=shape_r).astype(np.float32)
        ours = runner["fused_matmul"](left, right)
        assert np.array_equal(ours, torch.matmul(torch.from_numpy(left), torch.from_numpy(right)).numpy())
