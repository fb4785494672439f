"""Readers trust nothing: links out of a file, an edited manifest, a netx file or scales that differ from the NIR,
NaN and wrong dtypes, malformed checkpoints and resume files are each one LorspError line (issue 19, items 3, 5, 6)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import nir
import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch
from onnx import TensorProto, helper
from safetensors.torch import load_file, save_file

from deploy.bundle import HOST_FILE, MANIFEST_FILE, NETX_FILE, NIR_FILE, open_bundle
from deploy.manifest import write_manifest
from deploy.nir_reader import load_network, network_from_nir, read_nir
from deploy.onnx_runtime import check_onnx_contract, load_onnx_checked
from lorsp.plumbing.errors import LorspError
from lorsp.model import load
from lorsp.train import read_resume
from tests.conftest import assert_one_line_error, run_cli
from tests.test_export_loihi import shared_bundle, shared_checkpoint
from tests.test_hw_sim import affine, chain, lif


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return shared_bundle(tmp_path_factory)


def copy_bundle(bundle: Path, dst: Path) -> Path:
    shutil.copytree(bundle, dst)
    return dst


def manifest_of(root: Path) -> dict:
    return json.loads((root / MANIFEST_FILE).read_text())


def reseal(root: Path) -> None:
    """Re-hash every file and the manifest, as an attacker who edits files would: only the content checks remain."""
    fields = {k: v for k, v in manifest_of(root).items() if k not in ("format", "format_version", "artifacts")}
    write_manifest(root, fields)


# --------------------------------------------------------------------------- HDF5 links and external storage
def nir_file(path: Path) -> Path:
    nir.write(path, chain(("0", affine(4, 8)), ("1", lif(4))))
    return path


def test_a_nir_weight_linked_to_another_file_is_refused(tmp_path):
    other = nir_file(tmp_path / "other.nir")
    path = nir_file(tmp_path / "g.nir")
    with h5py.File(path, "a") as f:
        del f["node/nodes/0/weight"]
        f["node/nodes/0/weight"] = h5py.ExternalLink(str(other), "/node/nodes/0/weight")
    with pytest.raises(LorspError, match="external link"):
        read_nir(path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/0/weight"]
        f["node/nodes/0/weight"] = h5py.SoftLink("/node/nodes/0/bias")
    with pytest.raises(LorspError, match="soft link"):
        read_nir(path)


def test_a_nir_dataset_stored_in_an_outside_file_is_refused(tmp_path):
    path = nir_file(tmp_path / "g.nir")
    with h5py.File(path, "a") as f:
        del f["node/nodes/0/bias"]
        f.create_dataset("node/nodes/0/bias", shape=(4,), dtype="<f4", external=[("/etc/passwd", 0, 16)])
    with pytest.raises(LorspError, match="external file"):
        read_nir(path)


# --------------------------------------------------------------------------- NIR values
@pytest.mark.parametrize("value,fragment", [
    (np.full((4, 8), np.nan, np.float32), "NaN or infinite"),
    (np.full((4, 8), np.inf, np.float32), "NaN or infinite"),
    (np.zeros((4, 8), dtype=[("a", "<f4"), ("b", "<i4")]), "not a real number type"),
    (np.full((4, 8), "w", dtype="<U1"), "not a real number type"),
    ("weights", "is text"),
])
def test_nir_weights_that_are_not_finite_numbers_are_refused(value, fragment):
    node = affine(4, 8)
    node.weight = value
    with pytest.raises(LorspError, match=fragment):
        network_from_nir(chain(("0", node), ("1", lif(4)), type_check=False))


def test_nonpositive_time_constants_and_thresholds_are_refused():
    for key in ("tau", "v_threshold"):
        neuron = lif(4)
        setattr(neuron, key, np.zeros(4, np.float32))
        with pytest.raises(LorspError, match=f"{key} > 0"):
            network_from_nir(chain(("0", affine(4, 8)), ("1", neuron)))


# --------------------------------------------------------------------------- manifest
def edit_manifest(bundle: Path, dst: Path, edit, seal: bool) -> Path:
    root = copy_bundle(bundle, dst)
    manifest = manifest_of(root)
    edit(manifest)
    (root / MANIFEST_FILE).write_text(json.dumps(manifest).replace('"DEEP"', "[" * 100_000 + "]" * 100_000))
    if seal:
        from deploy.manifest_schema import manifest_digest
        manifest["integrity"] = {"sha256": manifest_digest(manifest)}
        (root / MANIFEST_FILE).write_text(json.dumps(manifest))
    return root


def _del(path: list, key: str):
    def edit(m):
        node = m
        for p in path:
            node = node[p]
        del node[key]
    return edit


MANIFEST_EDITS = {
    "figure edited": (lambda m: m["checks"]["round_trip"].update(agreement=0.5), False, "integrity sha256"),
    "class renamed": (lambda m: m["classes"].__setitem__(0, "cat"), False, "integrity sha256"),
    "artifact dropped": (lambda m: m["artifacts"].pop("hw_sim/report.html"), False, "integrity sha256"),
    "no artifact sha256": (lambda m: m["artifacts"][NIR_FILE].pop("sha256"), True, "lacks 'sha256'"),
    "artifacts a string": (lambda m: m.__setitem__("artifacts", "all fine"), True, "artifacts must be an object"),
    "config a string": (lambda m: m.__setitem__("config", "lorsp"), True, "not a mapping"),
    "image_size a string": (lambda m: m["config"].__setitem__("image_size", "32"), True, "'image_size'"),
    "backbone sha nulled": (lambda m: m.__setitem__("backbone_weights_sha256", None), True, "must be a sha256"),
    "path out of bundle": (lambda m: m["artifacts"].__setitem__("../../etc/passwd", m["artifacts"][NIR_FILE]),
                           True, "not a path inside the bundle"),
    "absolute path": (lambda m: m["artifacts"].__setitem__("/etc/passwd", m["artifacts"][NIR_FILE]), True,
                      "not a path inside the bundle"),
    "deep nesting": (lambda m: m.__setitem__("checks", "DEEP"), False, "nested too deeply"),
    "nesting over the limit": (lambda m: m.__setitem__("checks", json.loads("[" * 20 + "]" * 20)), True,
                               "nested deeper than 16"),
    "unknown field": (lambda m: m.__setitem__("run_this", "rm -rf /"), True, "no lorsp writer writes"),
    "no integrity": (lambda m: m.pop("integrity"), False, "lacks 'integrity'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(MANIFEST_EDITS))
def test_an_edited_manifest_is_refused_in_one_line(bundle, tmp_path, case):
    edit, seal, fragment = MANIFEST_EDITS[case]
    root = edit_manifest(bundle, tmp_path / "b", edit, seal)
    with pytest.raises(LorspError, match=fragment):
        open_bundle(root)


def test_the_schema_takes_every_onnx_precision_an_export_writes():
    from deploy.manifest_schema import ONNX, ONNX_PRECISIONS
    from deploy.onnx_runtime import ONNX_FILES, PRECISIONS
    assert ONNX_PRECISIONS == PRECISIONS
    ONNX({"files": dict(ONNX_FILES), "input": "prompted_image", "output": "logits", "image_size": 32,
          "macs_per_image": 1}, "manifest.onnx")
    with pytest.raises(LorspError, match="files key must be one of"):
        ONNX({"files": {"int4": "b.onnx"}, "input": "i", "output": "o", "image_size": 32, "macs_per_image": 1}, "m")


@pytest.mark.slow
def test_manifest_errors_reach_the_user_as_one_line(bundle, tmp_path):
    root = edit_manifest(bundle, tmp_path / "b", MANIFEST_EDITS["deep nesting"][0], False)
    proc = run_cli("hw_sim.cli", str(root), "-o", str(tmp_path / "r"), "--quiet")
    assert_one_line_error(proc, "nested")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_an_artifact_that_is_a_link_out_of_the_bundle_is_refused(bundle, tmp_path):
    root = copy_bundle(bundle, tmp_path / "b")
    outside = tmp_path / "elsewhere.nir"
    shutil.move(root / NIR_FILE, outside)
    (root / NIR_FILE).symlink_to(outside)
    with pytest.raises(LorspError, match="link or leads out of the bundle"):
        open_bundle(root)


# --------------------------------------------------------------------------- netx and the fixed-point scales
@pytest.mark.slow
def test_a_netx_file_that_differs_from_the_nir_network_is_refused_even_resealed(bundle, tmp_path):
    root = copy_bundle(bundle, tmp_path / "b")
    with h5py.File(root / NETX_FILE, "a") as f:
        w = f["layer/1/weight"][()]
        w[0, 0] += 2
        f["layer/1/weight"][...] = w
    reseal(root)
    with pytest.raises(LorspError, match="layer/1/weight differs from the fixed-point form"):
        open_bundle(root)


@pytest.mark.slow
def test_a_host_scale_that_differs_from_the_nir_network_is_refused_even_resealed(bundle, tmp_path):
    root = copy_bundle(bundle, tmp_path / "b")
    tensors = load_file(root / HOST_FILE)
    from safetensors import safe_open
    with safe_open(str(root / HOST_FILE), framework="pt") as f:
        meta = f.metadata()
    tensors["fixed_point.scale"] = tensors["fixed_point.scale"] * 2
    save_file(tensors, root / HOST_FILE, metadata=meta)
    reseal(root)
    with pytest.raises(LorspError, match="fixed_point.scale .* differs"):
        open_bundle(root)


# --------------------------------------------------------------------------- host file values and dtypes
def host_variant(bundle: Path, tmp_path: Path, change) -> Path:
    from safetensors import safe_open
    tensors = load_file(bundle / HOST_FILE)
    with safe_open(str(bundle / HOST_FILE), framework="pt") as f:
        meta = f.metadata()
    change(tensors, meta)
    path = tmp_path / HOST_FILE
    save_file(tensors, path, metadata=meta)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("change,fragment", [
    (lambda t, m: t["prompt.B"].view(-1)[0].fill_(float("nan")), "NaN or infinite"),
    (lambda t, m: t["head.weight"].view(-1)[3].fill_(float("inf")), "NaN or infinite"),
    (lambda t, m: t.__setitem__("prompt.A", t["prompt.A"] > 0), "torch.bool, expected torch.float32"),
    (lambda t, m: t.__setitem__("prompt.A", t["prompt.A"].half()), "torch.float16, expected torch.float32"),
    (lambda t, m: t.__setitem__("fixed_point.scale", t["fixed_point.scale"].float()), "expected torch.float64"),
    (lambda t, m: t.__setitem__("encoding.time_steps", torch.tensor([0])),
     "encoding.time_steps is malformed: it must hold"),
    (lambda t, m: (t.__setitem__("encoding.pool", torch.zeros(0, dtype=torch.int64)), t.pop("encoding.size"),
                   m.__setitem__("format", "lorsp-host-v1")), "encoding.pool is malformed: it must hold"),
])
def test_host_tensors_that_are_not_finite_or_of_another_dtype_are_refused(bundle, tmp_path, change, fragment):
    from deploy.host import read_host
    with pytest.raises(LorspError, match=fragment):
        read_host(host_variant(bundle, tmp_path, change))


# --------------------------------------------------------------------------- ONNX
def tiny_onnx(path: Path, weight: np.ndarray, input_name: str = "prompted_image", classes: int = 10,
              size: int = 32) -> Path:
    """``logits = GlobalAveragePool(x) @ W``: the backbone file contract at toy size."""
    w = onnx.numpy_helper.from_array(weight, "W")
    nodes = [helper.make_node("GlobalAveragePool", [input_name], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                                                         ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_onnx_initialisers_holding_nan_or_inf_are_refused(tmp_path):
    good = tiny_onnx(tmp_path / "good.onnx", np.ones((3, 10), np.float32))
    load_onnx_checked(good)
    for bad in (np.nan, np.inf):
        weight = np.ones((3, 10), np.float32)
        weight[1, 2] = bad
        with pytest.raises(LorspError, match="'W' holds NaN or infinite"):
            load_onnx_checked(tiny_onnx(tmp_path / "bad.onnx", weight))


def test_onnx_weights_in_an_external_file_are_refused(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx", np.ones((3, 10), np.float32))
    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    with pytest.raises(LorspError, match="external file"):
        load_onnx_checked(path)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"input_name": "image"}, "expected \\['prompted_image'\\]"),
    ({"classes": 7}, "logits is FLOAT \\['N', 7\\], expected FLOAT \\[N, 10\\]"),
    ({"size": 64}, "prompted_image is FLOAT \\['N', 3, 64, 64\\], expected"),
])
def test_onnx_names_shapes_and_class_count_are_checked_against_the_bundle(tmp_path, kwargs, fragment):
    weight = np.ones((3, kwargs.get("classes", 10)), np.float32)
    proto = load_onnx_checked(tiny_onnx(tmp_path / "m.onnx", weight, **kwargs))
    with pytest.raises(LorspError, match=fragment):
        check_onnx_contract(proto, 32, 10, "m.onnx")


# --------------------------------------------------------------------------- checkpoints and resume files
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return shared_checkpoint(tmp_path_factory)


def saved(tmp_path: Path, state: dict, name: str = "x.pt") -> Path:
    torch.save(state, tmp_path / name)
    return tmp_path / name


@pytest.mark.slow
@pytest.mark.parametrize("change,fragment", [
    (lambda s: s["head"]["weight"].fill_(float("nan")), "head tensor 'weight' holds NaN"),
    (lambda s: s["prompt"].__setitem__("B", s["prompt"]["B"].double()), "prompt tensor 'B' is torch.float64"),
    (lambda s: s["prompt"].pop("A"), "prompt lacks 'A'"),
    (lambda s: s["head"].__setitem__("weight", s["head"]["weight"][:3]), "head tensor 'weight' is"),
    (lambda s: s.__setitem__("config", "lorsp"), "not a mapping"),
    (lambda s: s["config"].__setitem__("image_size", "32"), "config 'image_size'"),
    (lambda s: s["config"].__setitem__("image_size", 100000), "config 'image_size' must be"),
    (lambda s: s["config"].__setitem__("hidden", -1), "config 'hidden' must be"),
    (lambda s: s["config"].__setitem__("momentum", float("nan")), "config 'momentum' must be"),
    (lambda s: s["config"].__setitem__("threshold", 1e308), "config 'threshold' must be"),
    (lambda s: s["config"].__setitem__("init_std", 2 ** 70), r"config 'init_std' is 1.18e\+21, a whole number beyond"),
    (lambda s: s.__setitem__("classes", [1, 2]), "classes must be"),
    (lambda s: s.__setitem__("backbone_weights_sha256", 7), "backbone_weights_sha256"),
])
def test_a_hostile_checkpoint_is_one_line(checkpoint, tmp_path, change, fragment):
    state = torch.load(checkpoint, weights_only=True)
    change(state)
    with pytest.raises(LorspError, match=fragment):
        load(saved(tmp_path, state))


@pytest.mark.slow
@pytest.mark.parametrize("change,fragment", [
    (lambda s: s.pop("optimizer"), "lacks 'optimizer'"),
    (lambda s: s.__setitem__("epoch", 99), "resume epoch 99"),
    (lambda s: s.__setitem__("history", []), "one record per finished epoch"),
    (lambda s: s["config"].__setitem__("epochs", "2"), "config 'epochs'"),
    (lambda s: s["history"][0].__setitem__("train_seconds", "x"), "history record 1 train_seconds"),
    (lambda s: s["history"][0].pop("val_accuracy"), "history record 1 val_accuracy"),
])
def test_a_hostile_resume_file_is_refused_before_any_data(checkpoint, tmp_path, change, fragment):
    state = torch.load(checkpoint.parent / "last.pt", weights_only=True)
    change(state)
    with pytest.raises(LorspError, match=fragment):
        read_resume(saved(tmp_path, state, "last.pt"))


@pytest.mark.slow
@pytest.mark.parametrize("change,fragment", [
    (lambda s: s["model"]["head"].__setitem__("weight", s["model"]["head"]["weight"][:, :5]), "model head tensor"),
    (lambda s: s["model"]["prompt"].pop("B"), "model prompt lacks 'B'"),
    (lambda s: s["best_state"]["head"]["bias"].fill_(float("nan")), "best_state head tensor 'bias' holds NaN"),
    (lambda s: s.__setitem__("optimizer", {"state": {}, "param_groups": "x"}), "the optimizer state's param_groups"),
    (lambda s: s["optimizer"]["param_groups"][0].__setitem__("dampening", "x"), "optimizer state's param_groups"),
    (lambda s: s["optimizer"]["state"][0].__setitem__("momentum_buffer", torch.zeros(3)),
     "optimizer state 'momentum_buffer' has shape (3,)"),
    (lambda s: s["scheduler"].__setitem__("T_max", 0), "scheduler state (T_max 0"),
    (lambda s: s["optimizer"]["param_groups"][0].__setitem__("initial_lr", float("inf")), "initial_lr inf must be"),
    (lambda s: s["optimizer"]["param_groups"][0].__setitem__(  # found by benchmarks/fuzz.py (resume, seed 7, #4)
        "params", [i + 1000 for i in s["optimizer"]["param_groups"][0]["params"]]), "which its param_groups do not"),
    (lambda s: s["scheduler"].__setitem__("base_lrs", 3.5), "the scheduler state's base_lrs is 3.5"),  # fuzz #727
    (lambda s: s["scheduler"].__setitem__("optimizer", 5), "the scheduler state is not this run's (differs at"),
])
def test_a_resume_file_whose_tensors_do_not_fit_is_one_line(checkpoint, tmp_path, change, fragment):
    state = torch.load(checkpoint.parent / "last.pt", weights_only=True)
    change(state)
    path = saved(tmp_path, state, "last.pt")
    proc = run_cli("lorsp.train", "--resume", str(path), "--out", str(tmp_path / "run"), "--quiet")
    assert_one_line_error(proc, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.slow
def test_an_export_of_a_checkpoint_whose_config_names_no_dataset_is_one_line(checkpoint, tmp_path):
    from export.loihi import export_loihi

    state = torch.load(checkpoint, weights_only=True)
    del state["config"]["dataset"]
    with pytest.raises(LorspError, match="names no dataset: pass --dataset"):
        export_loihi(saved(tmp_path, state), tmp_path / "out", samples=4)
    assert not (tmp_path / "out").exists()


def test_an_onnx_model_that_fails_on_real_input_is_one_line(tmp_path):
    """Found by benchmarks/fuzz.py: a bias of shape (10, 1) passes the checker and fails only when run."""
    from deploy.onnx_runtime import make_session, run_logits

    path = tiny_onnx(tmp_path / "m.onnx", np.ones((3, 10), np.float32))
    model = onnx.load(str(path))
    model.ir_version = 8
    bias = onnx.numpy_helper.from_array(np.ones((10, 1), np.float32), "b")
    model.graph.initializer.append(bias)
    model.graph.node[-1].output[0] = "mm"
    model.graph.node.append(helper.make_node("Add", ["mm", "b"], ["logits"]))
    onnx.save(model, str(path))
    with pytest.raises(LorspError, match="the ONNX model failed on a batch of 2 images"):
        run_logits(make_session(path), np.zeros((2, 3, 32, 32), np.float32))


def test_a_nir_file_that_sends_hdf5_into_an_endless_loop_is_stopped_in_one_line(tmp_path, monkeypatch):
    """Found by benchmarks/fuzz.py (seed 1, NIR case 298): with its global heap zeroed, every string read spins."""
    import deploy.hdf5_files

    path = nir_file(tmp_path / "g.nir")
    data = bytearray(path.read_bytes())
    at = data.find(b"GCOL")  # the global heap collection that holds the variable-length strings
    assert at > 0
    data[at + 16:at + 112] = bytes(96)  # its first objects' headers: HDF5 then loops reading any string
    path.write_bytes(bytes(data))
    monkeypatch.setattr(deploy.hdf5_files, "READ_TIMEOUT_S", 3.0)
    with pytest.raises(LorspError, match="took more than 3 s and was stopped: a corrupt NIR graph"):
        read_nir(path)


def _count_layers(path: str) -> int:
    return len(load_network(path).layers)


def test_a_nir_file_is_read_in_a_pool_worker_too(tmp_path):
    """A daemonic process may not start the reader's child: there the read runs in place."""
    import multiprocessing as mp

    path = nir_file(tmp_path / "g.nir")
    with mp.get_context("fork").Pool(1) as pool:
        assert pool.apply(_count_layers, (str(path),)) == 1


@pytest.mark.slow
def test_a_resealed_manifest_naming_a_kernel_folder_as_dataset_is_one_line_not_a_hang(bundle, tmp_path):
    root = edit_manifest(bundle, tmp_path / "b", lambda m: m["config"].__setitem__("dataset", "imagefolder:/proc/self"),
                         True)
    proc = run_cli("hw_sim.cli", str(root), "-o", str(tmp_path / "r"), "--quiet", timeout=120)
    assert_one_line_error(proc, "pass --dataset imagefolder:/proc/self")  # a stored path is read only when named
    proc = run_cli("hw_sim.cli", str(root), "--dataset", "imagefolder:/proc/self", "-o", str(tmp_path / "r"),
                   "--quiet", timeout=120)
    assert_one_line_error(proc, "kernel file system")
    assert not (tmp_path / "r").exists()


def test_an_onnx_graph_that_never_ends_is_stopped_at_its_time_limit_in_one_line(tmp_path):
    """A backbone with the right interface whose graph loops 2^62 times: onnxruntime's terminate flag stops it at
    ``timeout`` (what lorsp-cosim's --timeout bounds), one LorspError line, nothing printed by onnxruntime."""
    import time

    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from deploy.onnx_runtime import INPUT_NAME, OUTPUT_NAME, make_session, run_logits

    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    nodes = [helper.make_node("Loop", ["trips", "go", "zero"], ["count"], body=body),
             helper.make_node("ReduceMean", [INPUT_NAME], ["pooled"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Mul", ["pooled", "count"], ["scaled"]),
             helper.make_node("Unsqueeze", ["scaled", "axis"], [OUTPUT_NAME])]
    graph = helper.make_graph(
        nodes, "hostile", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [2 ** 62]), helper.make_tensor("go", TensorProto.BOOL, [], [True]),
         helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]), helper.make_tensor("axis", TensorProto.INT64, [1], [1])])
    path = tmp_path / "loop.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    session = make_session(path)
    start = time.monotonic()
    with pytest.raises(LorspError, match="ran past its time limit of 1 s"):
        run_logits(session, np.zeros((2, 3, 8, 8), np.float32), timeout=1.0)
    assert time.monotonic() - start < 30


def test_a_manifest_with_a_key_twice_or_a_linked_manifest_is_refused(tmp_path_factory, tmp_path):
    """JSON readers disagree on which of two equal keys counts, so a manifest holding one twice is refused; so is a
    manifest that is a link (to a file outside the bundle)."""
    import shutil

    from deploy.manifest import MANIFEST_FILE, read_manifest
    from tests.test_export_loihi import shared_bundle

    bundle = tmp_path / "b"
    shutil.copytree(shared_bundle(tmp_path_factory), bundle)
    text = (bundle / MANIFEST_FILE).read_text()
    (bundle / MANIFEST_FILE).write_text(text.replace('"format":', '"format": "x", "format":', 1))
    with pytest.raises(LorspError, match="key 'format' appears twice"):
        read_manifest(bundle)
    outside = tmp_path / "elsewhere.json"
    outside.write_text(text)
    (bundle / MANIFEST_FILE).unlink()
    (bundle / MANIFEST_FILE).symlink_to(outside)
    with pytest.raises(LorspError, match="is a symbolic link"):
        read_manifest(bundle)


def test_non_finite_logits_of_an_onnx_backbone_are_an_error_not_a_result(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from deploy.onnx_runtime import INPUT_NAME, OUTPUT_NAME, make_session, run_logits

    nodes = [helper.make_node("ReduceMean", [INPUT_NAME], ["pooled"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
             helper.make_node("Div", ["flat", "zero"], [OUTPUT_NAME])]  # 0 / 0 = NaN
    graph = helper.make_graph(nodes, "nan", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1])],
                              [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
                               helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])])
    path = tmp_path / "nan.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    with pytest.raises(LorspError, match="non-finite logits .* for 2 of 2 images"):
        run_logits(make_session(path), np.zeros((2, 3, 8, 8), np.float32))


def test_a_data_set_of_other_classes_than_the_models_is_refused_not_scored(tmp_path_factory):
    """lorsp-hwsim and lorsp-cosim with --dataset of other classes (fashion-mnist's against a digit model) refuse in
    one line instead of reporting an accuracy of labels that do not name the model's classes."""
    from lorsp.data import list_datasets
    from tests.conftest import assert_one_line_error, run_cli
    from tests.test_export_loihi import shared_bundle

    from tests.deploy_helpers import shared_all_bundle

    other = "animal-shape" if "animal-shape" in list_datasets() else "lfw-faces"
    for module, bundle in (("hw_sim.cli", shared_bundle(tmp_path_factory)),
                           ("hw_sim.cosim_cli", shared_all_bundle(tmp_path_factory)[0])):
        out = tmp_path_factory.mktemp("out") / "report"
        assert_one_line_error(run_cli(module, str(bundle), "--dataset", other, "-o", str(out)),
                              f"dataset {other} has classes", "do not name the model's classes")
        assert not out.exists()


def test_a_safetensors_file_whose_header_names_a_tensor_twice_is_refused(tmp_path_factory, tmp_path):
    """Readers of safetensors disagree on which of two equal header keys counts: a host file (or backbone weights)
    with one tensor named twice is refused in one line."""
    import json
    import shutil
    import struct

    from deploy.host import read_host
    from lorsp.backbones import read_state_dict
    from tests.test_export_loihi import shared_bundle

    source = shared_bundle(tmp_path_factory) / "host.safetensors"
    data = source.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = data[8:8 + size].decode()
    first = next(k for k in json.loads(header) if k != "__metadata__")
    entry = json.dumps(json.loads(header)[first])
    doubled = header.replace("{", "{" + json.dumps(first) + ": " + entry + ", ", 1)
    hostile = tmp_path / "host.safetensors"
    hostile.write_bytes(struct.pack("<Q", len(doubled)) + doubled.encode() + data[8 + size:])
    for read in (read_host, read_state_dict):
        with pytest.raises(LorspError, match=f"key '{first}' appears twice"):
            read(hostile)
    shutil.copy(source, tmp_path / "fine.safetensors")
    read_host(tmp_path / "fine.safetensors")
