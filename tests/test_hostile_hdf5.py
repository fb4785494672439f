"""HDF5 files (NIR, netx) that declare more than they hold or point elsewhere (issue 28): a 40 KB netx file
declaring a 10^6 x 10^6 weight, object and region references, virtual datasets. Each is one line before any
value is read, through the real ``lorsp-hwsim``, and nothing is written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

from deploy.bundle import MANIFEST_FILE, NETX_FILE, NIR_FILE
from deploy.manifest import write_manifest
from deploy.nir_reader import read_nir
from lorsp.plumbing.errors import LorspError
from tests.conftest import assert_one_line_error, run_cli
from tests.test_export_loihi import shared_bundle
from tests.test_hw_sim import affine, chain, lif


def resealed_variant(bundle: Path, dst: Path, name: str, edit) -> Path:
    """A copy of ``bundle`` whose file ``name`` is edited by ``edit(h5py.File)`` and every hash resealed, as an
    attacker would: only the readers' own checks stand between the file and the simulator."""
    shutil.copytree(bundle, dst)
    with h5py.File(dst / name, "a") as f:
        edit(f)
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    write_manifest(dst, {k: v for k, v in manifest.items() if k not in ("format", "format_version", "artifacts")})
    return dst


def huge_weight(f: h5py.File) -> None:
    del f["layer/1/weight"]  # chunked, nothing written: the file stays small, reading it would take 3.6 TiB
    f.create_dataset("layer/1/weight", shape=(10 ** 6, 10 ** 6), dtype="<i4", chunks=(1000, 1000))


def object_reference(f: h5py.File) -> None:
    f.create_dataset("layer/1/ref", data=np.array([f["layer/1/bias"].ref], dtype=h5py.ref_dtype))


def region_reference(f: h5py.File) -> None:
    bias = f["layer/1/bias"]
    f.create_dataset("layer/1/rref", data=np.array([bias.regionref[0:2]], dtype=h5py.regionref_dtype))


def reference_attribute(f: h5py.File) -> None:
    f["layer/1"].attrs.create("points", np.array([f["layer/1/bias"].ref], dtype=h5py.ref_dtype))


@pytest.mark.slow
@pytest.mark.parametrize("edit,fragment", [
    (huge_weight, "dataset /layer/1/weight declares shape (1000000, 1000000) of int32"),
    (object_reference, "dataset /layer/1/ref holds HDF5 references"),
    (region_reference, "dataset /layer/1/rref holds HDF5 references"),
    (reference_attribute, "attribute 'points' of /layer/1 holds HDF5 references"),
])
def test_a_netx_file_declaring_too_much_or_pointing_elsewhere_is_one_line(tmp_path_factory, tmp_path, edit, fragment):
    root = resealed_variant(shared_bundle(tmp_path_factory), tmp_path / "b", NETX_FILE, edit)
    assert (root / NETX_FILE).stat().st_size < 1 << 20
    proc = run_cli("hw_sim.cli", str(root), "-o", str(tmp_path / "r"), "--samples", "4", "--quiet", timeout=120)
    assert_one_line_error(proc, fragment, "refused, nothing read")
    assert "MemoryError" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def nir_file(path: Path) -> Path:
    nir.write(path, chain(("0", affine(4, 8)), ("1", lif(4))))
    return path


def test_a_nir_file_declaring_a_huge_weight_is_refused_before_reading(tmp_path):
    path = nir_file(tmp_path / "g.nir")
    with h5py.File(path, "a") as f:
        del f["node/nodes/0/weight"]
        f.create_dataset("node/nodes/0/weight", shape=(10 ** 6, 10 ** 6), dtype="<f4", chunks=(1000, 1000))
    with pytest.raises(LorspError, match=r"declares shape \(1000000, 1000000\) of float32"):
        read_nir(path)


def test_many_datasets_declaring_too_much_together_are_refused(tmp_path):
    path = nir_file(tmp_path / "g.nir")
    with h5py.File(path, "a") as f:
        for k in range(3):  # each under the per-dataset limit, together over the file's
            f.create_dataset(f"pad/{k}", shape=(100, 1 << 17), dtype="<f8", chunks=(1, 1024))
    with pytest.raises(LorspError, match="declare more than 256 MiB in all"):
        read_nir(path)


def test_a_virtual_nir_dataset_is_refused(tmp_path):
    other = nir_file(tmp_path / "other.nir")
    path = nir_file(tmp_path / "g.nir")
    layout = h5py.VirtualLayout(shape=(4, 8), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(other), "node/nodes/0/weight", shape=(4, 8))
    with h5py.File(path, "a") as f:
        del f["node/nodes/0/weight"]
        f.create_virtual_dataset("node/nodes/0/weight", layout)
    with pytest.raises(LorspError, match="is a virtual dataset"):
        read_nir(path)


def test_the_bundles_own_files_pass_the_size_checks(tmp_path_factory):
    from deploy.hdf5_files import check_self_contained

    bundle = shared_bundle(tmp_path_factory)
    for name in (NIR_FILE, NETX_FILE):
        check_self_contained(bundle / name, name)
