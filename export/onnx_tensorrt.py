"""The ONNX graph rules TensorRT's parser enforces on an explicitly quantised (QDQ) file, checked on any CPU.

TensorRT (its ONNX parser, ``onnx-tensorrt``, and the "explicit quantization" chapter of its
developer guide) takes int8 QDQ graphs under these rules; :func:`tensorrt_violations` lists
every node that breaks one:

1. quantisation is symmetric: every ``QuantizeLinear`` / ``DequantizeLinear`` has a zero
   point, and every zero point is 0 (``"TRT only supports symmetric quantization"``);
2. the quantised type is signed 8-bit: zero points are int8, and no tensor of the graph
   (initializer, input, output or inferred value) is uint8;
3. scales are float32 constants (initializers), all positive and finite;
4. per-channel scales only on weights: a scale with more than one value belongs to a
   ``DequantizeLinear`` of an initializer, along its output-channel axis 0;
5. no operator-level quantised ops (``QLinearConv``, ``QLinearAdd``, ``ConvInteger``,
   ``MatMulInteger``, ...) and no node outside the standard ONNX domain;
6. opset 13 or later (per-axis QDQ).

:func:`check_tensorrt_rules` raises one :class:`~lorsp.plumbing.errors.LorspError` naming the first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from lorsp.plumbing.errors import LorspError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
               "QLinearGlobalAveragePool", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "ConvInteger",
               "MatMulInteger", "DynamicQuantizeLinear")
MIN_OPSET = 13


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def tensorrt_violations(proto: onnx.ModelProto) -> list[str]:
    """Every break of the rules above, one line each (empty: TensorRT's parser takes the graph's QDQ)."""
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    problems: list[str] = []
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        problems.append(f"opset {opset} < {MIN_OPSET}: per-axis QDQ needs opset 13")
    values = [*graph.input, *graph.output, *graph.value_info]
    problems += [f"tensor {v.name!r} is uint8" for v in values
                 if v.type.tensor_type.elem_type == onnx.TensorProto.UINT8]
    problems += [f"initializer {t.name!r} is uint8" for t in graph.initializer if t.data_type == onnx.TensorProto.UINT8]
    qdq = 0
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"node {node.name!r} ({node.op_type}) is in domain {node.domain!r}")
        if node.op_type in INTEGER_OPS:
            problems.append(f"node {node.name!r} is {node.op_type}, an operator-level quantised op")
        if node.op_type not in QDQ_OPS:
            continue
        qdq += 1
        scale_name = node.input[1]
        zero_name = node.input[2] if len(node.input) > 2 else ""
        if not zero_name:
            problems.append(f"node {node.name!r} has no zero point (its default type is uint8)")
        elif zero_name not in inits:
            problems.append(f"node {node.name!r}: zero point {zero_name!r} is not a constant")
        else:
            zero = inits[zero_name]
            if zero.data_type != onnx.TensorProto.INT8:
                problems.append(f"node {node.name!r}: zero point is {onnx.TensorProto.DataType.Name(zero.data_type)},"
                                f" not INT8")
            if np.any(numpy_helper.to_array(zero) != 0):
                problems.append(f"node {node.name!r}: zero point is not 0 (asymmetric quantisation)")
        if scale_name not in inits:
            problems.append(f"node {node.name!r}: scale {scale_name!r} is not a constant")
            continue
        scale_proto = inits[scale_name]
        scale = numpy_helper.to_array(scale_proto)
        if scale_proto.data_type != onnx.TensorProto.FLOAT:
            problems.append(f"node {node.name!r}: scale is not float32")
        if not np.all(np.isfinite(scale) & (scale > 0)):
            problems.append(f"node {node.name!r}: a scale is not positive and finite")
        if scale.size > 1:
            weight = node.op_type == "DequantizeLinear" and node.input[0] in inits
            if not weight or _axis(node) != 0:
                problems.append(f"node {node.name!r}: per-channel scales on an activation or along axis "
                                f"{_axis(node)} (TensorRT: weights only, output channels)")
    if qdq == 0:
        problems.append("no QuantizeLinear/DequantizeLinear node: the graph is not explicitly quantised")
    return problems


def check_tensorrt_rules(proto: onnx.ModelProto, source: str | Path) -> None:
    """LorspError naming the first rule ``proto`` breaks, and how many more there are."""
    problems = tensorrt_violations(proto)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LorspError(f"{source} breaks TensorRT's QDQ rules: {problems[0]}{more}")
