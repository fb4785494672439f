"""examples/lava_dl_netx.py: prompt_generator.net run in lava-dl with the file's own settings, against lorsp's chip."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from safetensors.numpy import load_file

from deploy.bundle import NETX_FILE, open_bundle
from hw_sim.backends import get_backend
from lorsp.data import load_split_images
from tests.conftest import ROOT, assert_one_line_error
from tests.deploy_helpers import LORSP_PACKAGES, linked_copy, rewrite, run_isolated, shared_all_bundle

RECIPE = ROOT / "examples" / "lava_dl_netx.py"
SAMPLES = 32
LAVA_TIMEOUT = 240


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return shared_all_bundle(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, np.ndarray]:
    x, _ = load_split_images("sklearn-digits", 32, SAMPLES)
    path = tmp_path_factory.mktemp("images") / "x.npy"
    np.save(path, x.numpy())
    return path, x


@pytest.mark.lava
@pytest.mark.slow
def test_the_recipe_gives_the_chip_simulations_gates_exactly(bundle, images, tmp_path):
    path, x = images
    out = tmp_path / "gates.safetensors"
    proc = run_isolated(RECIPE, str(bundle), "--images", str(path), "--out", str(out),
                        "--timeout", str(LAVA_TIMEOUT), blocked=LORSP_PACKAGES, timeout=LAVA_TIMEOUT + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fixed_pt, reset_interval 8, reset_offset 1" in proc.stdout
    lava_dl = load_file(str(out))["gate_spikes"]
    b = open_bundle(bundle)
    spikes = b.host.encoding(x).numpy().astype(np.uint8)
    chip = get_backend("lava")(b.network, spikes, mode="fixed", timeout=LAVA_TIMEOUT).layer_spikes[-1]
    assert lava_dl.shape == chip.shape == (8, SAMPLES, 128)
    assert np.array_equal(lava_dl, chip) and chip.sum() > 0  # 100% of gate spikes, hence of gates


@pytest.mark.slow
def test_a_netx_file_without_its_settings_or_a_bad_timeout_is_one_line(bundle, images, tmp_path):
    copy = linked_copy(bundle, tmp_path / "old")
    data = (bundle / NETX_FILE).read_bytes()
    rewrite(copy / NETX_FILE, data)
    with h5py.File(copy / NETX_FILE, "a") as f:
        del f.attrs["reset_interval"]
    out = tmp_path / "g.safetensors"
    # the file no longer matches the manifest: refused before Lava starts
    proc = run_isolated(RECIPE, str(copy), "--images", str(images[0]), "--out", str(out), blocked=LORSP_PACKAGES)
    assert_one_line_error(proc, "does not match its sha256")
    proc = run_isolated(RECIPE, str(bundle), "--images", str(images[0]), "--out", str(out), "--timeout", "0",
                        blocked=LORSP_PACKAGES)
    assert_one_line_error(proc, "--timeout must be positive")
    assert not out.exists()
