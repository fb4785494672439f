"""Files that carry their own settings, and still open in their own ecosystems' tools."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import nir
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deploy.bundle import MANIFEST_FILE, NETX_FILE, NIR_FILE, open_bundle
from deploy.manifest import SPEC_VERSION
from deploy.nir_reader import SNNTORCH_DT, load_network
from export.onnx_convert import CALIBRATION_METHOD
from lorsp.data.transforms import RESIZE
from lorsp.encoding import ENCODING_VERSION
from lorsp.plumbing.errors import LorspError
from tests.deploy_helpers import shared_all_bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return shared_all_bundle(tmp_path_factory)[0]


@pytest.mark.slow
def test_nir_carries_dt_T_reset_and_encoding_and_opens_in_nir_and_snntorch(bundle):
    from snntorch.import_nir import import_from_nir

    graph = nir.read(bundle / NIR_FILE)  # with nir's type checks
    meta = {k: v.decode() if isinstance(v, bytes) else v for k, v in graph.metadata.items()}
    T = open_bundle(bundle).host.time_steps
    assert float(meta["dt"]) == SNNTORCH_DT and int(meta["time_steps"]) == int(meta["reset_interval"]) == T
    assert meta["encoding"] == "bands" and int(meta["encoding_version"]) == ENCODING_VERSION
    assert int(meta["lorsp.spec_version"]) == SPEC_VERSION and "zero" in meta["reset"]
    module = import_from_nir(graph)
    out, _ = module(torch.ones(1, 32), None)
    assert out.shape == (1, 128)


@pytest.mark.slow
def test_the_reader_takes_dt_from_the_metadata(bundle, tmp_path):
    graph = nir.read(bundle / NIR_FILE)
    tau = np.asarray(graph.nodes["1"].tau, dtype=np.float64)
    assert tau.min() > 1.5e-4  # beta 0.5 (tau = 2e-4) and the legacy 0.9 (1e-3): the new dt keeps 0 < beta < 1
    for dt, ok in ((1.5e-4, True), (-1.0, False), ("x", False)):
        graph.metadata["dt"] = dt
        nir.write(tmp_path / "g.nir", graph)
        if ok:
            network = load_network(tmp_path / "g.nir")
            assert network.dt == dt
            assert np.array_equal(network.layers[0].beta, (1.0 - dt / tau).astype(np.float32))
        else:
            with pytest.raises(LorspError, match="dt"):
                load_network(tmp_path / "g.nir")


@pytest.mark.lava
@pytest.mark.slow
def test_netx_carries_T_reset_delay_and_fixed_point_and_opens_in_lava_dl(bundle):
    from hw_sim.lava_runtime import import_lava_runtime

    import_lava_runtime()
    from lava.lib.dl.netx.hdf5 import Network

    b = open_bundle(bundle)
    with h5py.File(bundle / NETX_FILE, "r") as f:
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
    T = b.host.time_steps
    assert (attrs["time_steps"], attrs["reset_interval"], attrs["reset_offset"]) == (T, T, 1)
    assert attrs["delay_per_layer"] == 1 and attrs["output_lag"] == 2 and attrs["select_tag"] == "fixed_pt"
    assert list(attrs["scales"]) == b.host.fixed_point_scale.tolist()
    net = Network(net_config=str(bundle / NETX_FILE), reset_interval=int(attrs["reset_interval"]),
                  reset_offset=int(attrs["reset_offset"]))
    assert len(net) == 2 and [int(l.neuron.proc_params["reset_offset"]) for l in net.layers] == \
        json.loads((bundle / MANIFEST_FILE).read_text())["spec"]["generator"]["lava"]["reset_offset_per_layer"]


@pytest.mark.slow
def test_onnx_files_carry_preprocessing_classes_and_quantisation_and_pass_the_checks(bundle):
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    for precision, name in manifest["onnx"]["files"].items():
        proto = onnx.load(str(bundle / name))
        onnx.checker.check_model(proto, full_check=True)
        session = ort.InferenceSession(str(bundle / name), providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        assert meta["lorsp.classes"].split("\n") == manifest["classes"]
        pre = json.loads(meta["lorsp.preprocessing"])
        assert pre["resize"] == RESIZE and pre["value_range"] == [0.0, 1.0] and pre["image_size"] == 32
        assert pre["normalisation_inside"]["mean"] == [0.5, 0.5, 0.5]
        assert meta["lorsp.precision"] == precision
        scheme = json.loads(meta["lorsp.quantisation"])
        if precision.startswith("int8"):
            assert scheme["format"] == "QDQ" and scheme["calibration"]["method"] == CALIBRATION_METHOD
            assert "per output channel" in scheme["weights"]
        # no opset domain is declared that no node uses (the quantiser declares eight)
        assert {o.domain for o in proto.opset_import} <= {n.domain for n in proto.graph.node} | {""}, precision
