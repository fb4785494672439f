"""fp16 and int8 versions of an exported fp32 ONNX file (float16 conversion, static QDQ quantisation).

fp16: weights and activations float16, inputs and outputs float32. int8: static QDQ
quantisation calibrated on real prompted training images, in two variants (docs/onnx.md):
``int8`` tuned for onnxruntime's CPU provider (uint8 activations) and ``int8-trt`` for TensorRT
(symmetric S8S8, every zero point 0, checked by :mod:`export.onnx_tensorrt`).
"""
from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from deploy.onnx_runtime import (INPUT_NAME, PROVIDER_NAMES, ImageSource, as_array, first_line,
                                 load_onnx_checked, resolve_providers)
from export.onnx_graph import write_checked
from export.onnx_metadata import drop_unused_opsets, update_metadata
from export.onnx_tensorrt import check_tensorrt_rules
from lorsp.plumbing.errors import LorspError

INT8_SCHEMES = ("uint8", "int8-symmetric")



def sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node follows the producers of its inputs (stable)."""
    known = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = [copy.deepcopy(n) for n in graph.node], []
    while pending:
        waiting = []
        for node in pending:
            if all(i in known for i in node.input):
                ordered.append(node)
                known.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise LorspError(f"graph {graph.name!r} has a cycle or an undefined input")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)


def write_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write ``dst``: ``src`` with float16 weights and activations, float32 inputs and outputs.

    Uses the float16 converter that ships with onnxruntime (the same as
    onnxconverter-common's); ops it keeps in float32 get Casts around them. Users feed
    the same float32 arrays as to the fp32 file.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = load_onnx_checked(src)
    half = convert_float_to_float16(proto, keep_io_types=True)
    sort_topologically(half.graph)  # the converter appends the input Casts at the end
    update_metadata(half, {"lorsp.precision": "fp16", "lorsp.quantisation": json.dumps(
        {"scheme": "float16", "weights": "float16", "activations": "float16", "io": "float32"})})
    return write_checked(dst, lambda tmp: onnx.save(half, str(tmp)))


class ImageCalibrationReader(CalibrationDataReader):
    """onnxruntime calibration data: prompted images in batches of ``batch_size``."""

    def __init__(self, images: ImageSource, batch_size: int = 16):
        self.images = as_array(images)
        self.batch_size = batch_size
        self.start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= len(self.images):
            return None
        batch = self.images[self.start:self.start + self.batch_size]
        self.start += self.batch_size
        return {INPUT_NAME: batch}

    def rewind(self) -> None:
        self.start = 0

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)


def _check_calibration(images: np.ndarray, proto: onnx.ModelProto) -> None:
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    if images.ndim != 4 or len(images) == 0 or list(images.shape[1:]) != dims[1:]:
        raise LorspError(f"calibration images have shape {tuple(images.shape)}; the graph reads "
                         f"(N, {', '.join(map(str, dims[1:]))})")
    if not np.isfinite(images).all():
        raise LorspError("calibration images contain NaN or infinite values")


def int8_scheme(providers: Iterable[str] | None) -> str:
    """The activation scheme for the first provider: ``int8-symmetric`` for TensorRT, else ``uint8``."""
    return "int8-symmetric" if resolve_providers(providers)[0] == PROVIDER_NAMES["tensorrt"] else "uint8"


def _quantize_options(activations: str) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType

    if activations == "uint8":
        return {"activation_type": QuantType.QUInt8}
    if activations == "int8-symmetric":
        # TensorRT takes int8 Q/DQ only: biases stay float32 (it folds them into its int8 kernels itself)
        return {"activation_type": QuantType.QInt8,
                "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}}
    raise LorspError(f"unknown int8 activation scheme {activations!r}; choose from {', '.join(INT8_SCHEMES)}")


CALIBRATION_METHOD = "MinMax"
"""onnxruntime's ``CalibrationMethod`` every int8 file is calibrated with (named in its metadata)."""
ACTIVATION_SCHEMES = {"uint8": "uint8, asymmetric (zero points from calibration)",
                      "int8-symmetric": "int8, symmetric (every zero point 0)"}


def quantisation_scheme(activations: str, per_channel: bool, calibration_images: int) -> dict[str, Any]:
    """What an int8 file's ``lorsp.quantisation`` metadata says: format, types, symmetry, calibration."""
    return {"scheme": "static", "format": "QDQ", "activations": ACTIVATION_SCHEMES[activations],
            "weights": "int8, symmetric (zero points 0), " + ("per output channel" if per_channel else "per tensor"),
            "calibration": {"method": CALIBRATION_METHOD, "images": calibration_images,
                            "data": "prompted training images"},
            "tuned_for": "TensorRT (S8S8 QDQ)" if activations == "int8-symmetric"
            else "onnxruntime CPU (QLinearConv / QLinearAdd fusion)"}


def write_int8(src: str | Path, dst: str | Path, calibration_images: ImageSource, *,
               activations: str = "uint8", per_channel: bool = True, batch_size: int = 16,
               precision: str = "int8") -> Path:
    """Write ``dst``: ``src`` statically quantised to 8 bits (QDQ), calibrated on real images.

    ``calibration_images``: prompted training images (N, 3, L, L), what the graph
    reads in use (``prompted_arrays(splits.train, model.prompted, limit=128)``).
    The graph is first pre-processed (shape inference, folding) by ``quant_pre_process``;
    weights are int8 per output channel, activations MinMax-calibrated and either
    ``uint8`` (asymmetric: onnxruntime's CPU provider fuses every Conv and Add into
    QLinear ops) or ``int8-symmetric`` (what TensorRT expects; on CPU the depthwise
    convolutions would stay float, see docs/onnx.md). The file's metadata names
    ``precision`` and the scheme (:func:`quantisation_scheme`); opset domains no node uses
    (the quantiser declares eight) are dropped. An ``int8-symmetric`` file must pass
    TensorRT's graph rules (:mod:`export.onnx_tensorrt`) or nothing is written.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    options = _quantize_options(activations)
    images = as_array(calibration_images)
    _check_calibration(images, load_onnx_checked(src))
    reader = ImageCalibrationReader(images, batch_size)

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="lorsp-int8-") as work:
            prepared = Path(work) / "prepared.onnx"
            try:
                quant_pre_process(str(src), str(prepared))
                quantize_static(str(prepared), str(tmp), reader, quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, weight_type=QuantType.QInt8,
                                calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHOD), **options)
            except Exception as exc:  # onnxruntime's own exception types
                raise LorspError(f"int8 quantisation of {src} failed: {first_line(exc)}") from None
        proto = onnx.load(str(tmp))
        update_metadata(proto, {"lorsp.precision": precision, "lorsp.quantisation": json.dumps(
            quantisation_scheme(activations, per_channel, len(images)))})
        drop_unused_opsets(proto)
        if activations == "int8-symmetric":
            check_tensorrt_rules(proto, dst)
        onnx.save(proto, str(tmp))

    return write_checked(dst, write)
