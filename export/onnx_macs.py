"""Multiply-accumulates per image of an ONNX graph (Conv, Gemm, MatMul), from its inferred shapes."""
from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path

import onnx

from deploy.onnx_runtime import load_onnx_checked
from export.onnx_graph import DEFAULT_OPSET, export_at
from lorsp.plumbing.errors import LorspError
from lorsp.model import PromptedClassifier



def _fixed_batch(proto: onnx.ModelProto, image_size: int) -> onnx.ModelProto:
    """A copy of ``proto`` with batch 1, its spatial size checked against ``image_size``."""
    proto = copy.deepcopy(proto)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    spatial = [d.dim_value for d in dims[2:]]
    if spatial != [image_size, image_size]:
        raise LorspError(f"the graph reads {spatial[0]} x {spatial[1]} images, not {image_size} x {image_size}")
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = 1
    del proto.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)


def _shapes(proto: onnx.ModelProto) -> dict[str, list[int]]:
    values = [*proto.graph.input, *proto.graph.value_info, *proto.graph.output]
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
              for v in values}
    shapes.update({t.name: list(t.dims) for t in proto.graph.initializer})
    return shapes


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    """Multiply-accumulates of one Conv, Gemm or MatMul node (0 for other ops)."""
    if node.op_type not in ("Conv", "Gemm", "MatMul"):
        return 0
    needed = [node.output[0], node.input[0], node.input[1]]
    if any(n not in shapes or -1 in shapes[n] for n in needed):
        raise LorspError(f"cannot count MACs: shapes around {node.op_type} node {node.name!r} are unknown")
    out, a, w = (shapes[n] for n in needed)
    if node.op_type == "Conv":  # weight (C_out, C_in / groups, k...)
        return math.prod(out) * math.prod(w[1:])
    if node.op_type == "Gemm":
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        return math.prod(out) * (a[0] if trans_a else a[1])
    return math.prod(out) * a[-1]


def count_macs(model_or_onnx: PromptedClassifier | onnx.ModelProto | str | Path, image_size: int) -> int:
    """Multiply-accumulates per image of backbone and head (Conv, Gemm, MatMul), from the ONNX graph.

    Takes an exported file (any precision), its ModelProto, or a model (exported to a
    temporary file at ``image_size`` first). Element-wise ops, pooling and the
    normalisation are not counted: they are a fraction of a percent.
    """
    if isinstance(model_or_onnx, PromptedClassifier):
        with tempfile.TemporaryDirectory(prefix="lorsp-macs-") as work:
            path = export_at(model_or_onnx, Path(work) / "graph.onnx", DEFAULT_OPSET, int(image_size))
            return count_macs(path, image_size)
    proto = model_or_onnx if isinstance(model_or_onnx, onnx.ModelProto) else load_onnx_checked(model_or_onnx)
    inferred = _fixed_batch(proto, int(image_size))
    shapes = _shapes(inferred)
    return sum(_node_macs(node, shapes) for node in inferred.graph.node)
