"""The TensorRT int8 file: symmetric S8S8 QDQ, checked against TensorRT's graph rules here; parity bounds enforced."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.bundle import MANIFEST_FILE
from deploy.manifest import read_manifest
from deploy.onnx_runtime import INPUT_NAME, ONNX_FILES, OUTPUT_NAME, make_session, run_logits
from export.onnx_checks import ACCURACY_DROP_LIMITS, PARITY_TOLERANCES, check_accuracy_drop
from export.onnx_convert import CALIBRATION_METHOD
from export.onnx_tensorrt import check_tensorrt_rules, tensorrt_violations
from lorsp.plumbing.errors import LorspError
from tests.deploy_helpers import shared_all_bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return shared_all_bundle(tmp_path_factory)[0]


def qdq_graph(zero_point: int = 0, zero_type: int = TensorProto.INT8, scale: list[float] | None = None,
              extra: list[onnx.NodeProto] | None = None) -> onnx.ModelProto:
    """prompted_image -> QuantizeLinear -> DequantizeLinear -> Conv(DQ(int8 weight)) -> pool -> logits."""
    zp_dtype = np.int8 if zero_type == TensorProto.INT8 else np.uint8
    inits = [numpy_helper.from_array(np.array(scale or [0.02], np.float32).reshape(-1) if scale and len(scale) > 1
                                     else np.array(scale[0] if scale else 0.02, np.float32), "s"),
             numpy_helper.from_array(np.array(zero_point, zp_dtype), "z"),
             numpy_helper.from_array(np.ones((2, 3, 1, 1), np.int8), "wq"),
             numpy_helper.from_array(np.full(2, 0.1, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(2, np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", [INPUT_NAME, "s", "z"], ["q"], name="q_in", axis=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["x"], name="dq_in", axis=1),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dq_w", axis=0),
             helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], [OUTPUT_NAME]), *(extra or [])]
    graph = helper.make_graph(nodes, "qdq",
                              [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_the_rules_accept_symmetric_int8_and_name_each_break():
    assert tensorrt_violations(qdq_graph()) == []
    cases = {"zero point is not 0": qdq_graph(zero_point=3),
             "is uint8": qdq_graph(zero_type=TensorProto.UINT8),
             "per-channel scales on an activation": qdq_graph(scale=[0.1, 0.2, 0.3]),
             "operator-level quantised op": qdq_graph(extra=[helper.make_node("QLinearConv", [], [], name="ql")]),
             "in domain 'com.microsoft'": qdq_graph(extra=[helper.make_node("QGemm", [], [], name="g",
                                                                            domain="com.microsoft")])}
    for fragment, proto in cases.items():
        problems = tensorrt_violations(proto)
        assert any(fragment in p for p in problems), (fragment, problems)
        with pytest.raises(LorspError, match="breaks TensorRT's QDQ rules") as exc:
            check_tensorrt_rules(proto, "x.onnx")
        assert "\n" not in str(exc.value)
    float_only = qdq_graph()
    kept = [n for n in float_only.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    del float_only.graph.node[:]
    float_only.graph.node.extend(kept)
    assert any("not explicitly quantised" in p for p in tensorrt_violations(float_only))


@pytest.mark.slow
def test_the_bundle_has_a_tensorrt_int8_file_that_passes_the_rules_and_runs(bundle):
    manifest = read_manifest(bundle)  # the readers' schema takes onnx.files.int8-trt
    assert manifest == json.loads((bundle / MANIFEST_FILE).read_text())
    onnx_section = manifest["onnx"]
    assert onnx_section["files"]["int8-trt"] == ONNX_FILES["int8-trt"]
    trt = onnx.load(str(bundle / ONNX_FILES["int8-trt"]))
    cpu = onnx.load(str(bundle / ONNX_FILES["int8"]))
    assert tensorrt_violations(trt) == []
    assert any("zero point" in p or "uint8" in p for p in tensorrt_violations(cpu))  # today's CPU file: refused
    inits = {t.name: t for t in trt.graph.initializer}
    zero_points = [inits[n.input[2]] for n in trt.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert zero_points and all(z.data_type == TensorProto.INT8 and not numpy_helper.to_array(z).any()
                               for z in zero_points)
    per_channel = [n for n in trt.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                   and numpy_helper.to_array(inits[n.input[1]]).size > 1]
    assert len(per_channel) >= 30  # every convolution's weights, per output channel
    meta = {p.key: p.value for p in trt.metadata_props}
    scheme = json.loads(meta["lorsp.quantisation"])
    assert meta["lorsp.precision"] == "int8-trt" and scheme["calibration"]["method"] == CALIBRATION_METHOD
    assert "zero point 0" in scheme["activations"] and "TensorRT" in scheme["tuned_for"]
    assert onnx_section["quantisation"]["int8-trt"] == scheme and "passed" in onnx_section["tensorrt_rules"]["int8-trt"]
    for precision in ("fp16", "int8", "int8-trt"):
        parity = onnx_section["parity"][precision]
        assert parity["tolerance"] == PARITY_TOLERANCES[precision] and parity["tolerance_kind"] == "relative"
        assert parity["max_abs_logit_diff"] <= parity["tolerance"] * parity["max_abs_logit"]
        assert onnx_section["accuracy"][precision]["drop_vs_fp32"] <= ACCURACY_DROP_LIMITS[precision]
    session = make_session(bundle / ONNX_FILES["int8-trt"], ["cpu"])
    assert run_logits(session, np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


def test_an_accuracy_drop_past_its_bound_is_one_line():
    within = {"fp32": {"accuracy": 0.9, "drop_vs_fp32": 0.0, "samples": 100},
              "int8": {"accuracy": 0.9 - ACCURACY_DROP_LIMITS["int8"], "drop_vs_fp32": ACCURACY_DROP_LIMITS["int8"],
                       "samples": 100}}
    check_accuracy_drop(within)
    past = {**within, "fp16": {"accuracy": 0.85, "drop_vs_fp32": 0.05, "samples": 100}}
    with pytest.raises(LorspError, match=r"fp16: accuracy 0.8500 on 100 validation images is 5.00 points below "
                                         r"fp32 \(allowed 1\)"):
        check_accuracy_drop(past)


@pytest.mark.slow
def test_a_precision_past_its_parity_bound_fails_the_export_with_one_line(tmp_path_factory, tmp_path, capsys,
                                                                          monkeypatch):
    from pipeline.export_cli import main as export_main
    from tests.conftest import assert_one_line_error
    from tests.deploy_helpers import call_cli
    from tests.test_export_loihi import shared_checkpoint

    monkeypatch.setitem(PARITY_TOLERANCES, "fp16", 1e-9)  # tighter than any fp16 file can be
    out = tmp_path / "onnx"
    proc = call_cli(export_main, capsys, "--target", "onnx", str(shared_checkpoint(tmp_path_factory)), "-o", str(out),
                    "--precision", "fp16", "--samples", "4", "--quiet")
    assert_one_line_error(proc, "backbone.fp16.onnx: logits differ from PyTorch", "(allowed 1e-09 x the largest |logit|")
    assert not out.exists() and not out.with_name("onnx.partial").exists()
