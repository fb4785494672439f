"""The ONNX runtime that writers and readers share: file contract, providers, checked loading, sessions.

The backbone file's contract (docs/onnx.md)::

    prompted_image (N, 3, L, L) float32 = x + prompt(x), x in [0, 1]  ->  logits (N, classes)

:func:`load_onnx_checked` reads a file and runs ``onnx.checker`` with the full check;
:func:`make_session` opens it on named execution providers and never falls back
silently to another one; :func:`run_logits` runs it in batches.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import torch

from lorsp.plumbing.errors import LorspError

INPUT_NAME = "prompted_image"
OUTPUT_NAME = "logits"
PRECISIONS = ("fp32", "fp16", "int8", "int8-trt")
ONNX_FILES = {"fp32": "backbone.onnx", "fp16": "backbone.fp16.onnx", "int8": "backbone.int8.onnx",
              "int8-trt": "backbone.int8-trt.onnx"}
NUMBER_FORMATS = {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "int8-trt": "int8"}
"""The arithmetic each precision's file runs in (``int8``: the CPU-tuned file, uint8 activations;
``int8-trt``: symmetric S8S8 QDQ for TensorRT)."""
DEFAULT_THREADS = 2
PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "qnn": "QNNExecutionProvider",
}

ImageSource = torch.Tensor | np.ndarray


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters), for one-line errors."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def check_onnx_model(proto: onnx.ModelProto, source: str | Path) -> None:
    """``onnx.checker`` with the full check (shape inference included); LorspError if it fails."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise LorspError(f"{source} fails the ONNX check: {first_line(exc)}") from None
    except UnicodeDecodeError:  # the checker's message quotes a corrupt name or string that is not UTF-8
        raise LorspError(f"{source} fails the ONNX check: a name or string in it is not UTF-8") from None


def load_onnx_checked(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file and check it; a missing, truncated or non-ONNX file is one LorspError."""
    path = Path(path)
    if not path.is_file():
        raise LorspError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)  # data outside the file is refused below
    except Exception as exc:  # protobuf decode errors have no common public base class
        raise LorspError(f"{path} is not a readable ONNX file (truncated or corrupt): {first_line(exc)}") from None
    if not proto.graph.node or proto.ir_version <= 0:
        raise LorspError(f"{path} is not an ONNX model (no graph or IR version)")
    check_onnx_tensors(proto, path)
    check_onnx_model(proto, path)
    return proto


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]


def check_onnx_contract(proto: onnx.ModelProto, image_size: int, classes: int, source: str | Path) -> None:
    """The file contract (module docstring) with the bundle's sizes: one input ``prompted_image``
    ``(N, 3, L, L)`` float32 and one output ``logits`` ``(N, classes)``; LorspError naming what differs."""
    weights = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in weights]
    outputs = list(proto.graph.output)
    if [v.name for v in inputs] != [INPUT_NAME] or [v.name for v in outputs] != [OUTPUT_NAME]:
        raise LorspError(f"{source}: inputs {[v.name for v in inputs]} and outputs {[v.name for v in outputs]}, "
                         f"expected [{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]")
    for value, expected in ((inputs[0], [3, image_size, image_size]), (outputs[0], [classes])):
        dims = _dims(value)
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or len(dims) != len(expected) + 1 or \
                dims[1:] != expected:
            kind = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)
            raise LorspError(f"{source}: {value.name} is {kind} "
                             f"{dims}, expected FLOAT [N, {', '.join(map(str, expected))}] for this bundle")


def _graph_tensors(graph: onnx.GraphProto) -> Iterable[tuple[str, onnx.TensorProto]]:
    """Every tensor a graph holds: its initialisers and the values of its Constant nodes, sub-graphs too."""
    for t in graph.initializer:
        yield t.name, t
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield f"{node.name or node.op_type}.{attr.name}", attr.t
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from _graph_tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graph_tensors(g)


def check_onnx_tensors(proto: onnx.ModelProto, source: str | Path) -> None:
    """Refuse tensors stored outside the file (external data) and floating tensors holding NaN or infinity."""
    for name, tensor in _graph_tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise LorspError(f"{source}: tensor {name!r} keeps its data in an external file; a bundle's ONNX file "
                             f"must hold all its weights itself")
        try:
            array = onnx.numpy_helper.to_array(tensor)
        except Exception as exc:  # malformed raw data has no common exception type
            raise LorspError(f"{source}: tensor {name!r} cannot be read: {first_line(exc)}") from None
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise LorspError(f"{source}: tensor {name!r} holds NaN or infinite values")


def resolve_providers(providers: Iterable[str] | None) -> list[str]:
    """Short or full provider names -> onnxruntime's names, each available here, in order."""
    names = [PROVIDER_NAMES.get(p.lower(), p) for p in (providers or ["cpu"])]
    unknown = [p for p in names if not p.endswith("ExecutionProvider")]
    if unknown:
        raise LorspError(f"unknown execution provider {unknown[0]!r}; short names: {', '.join(PROVIDER_NAMES)}")
    available = ort.get_available_providers()
    missing = [p for p in names if p not in available]
    if missing:
        raise LorspError(f"execution provider {missing[0]} is not available in this onnxruntime "
                         f"{ort.__version__} build; available: {', '.join(available)}")
    return list(dict.fromkeys(names))


def make_session(path: str | Path, providers: Iterable[str] | None = ("cpu",),
                 threads: int = DEFAULT_THREADS, spinning: bool = True) -> ort.InferenceSession:
    """An onnxruntime session on ``providers`` (tried in order), never falling back silently.

    ``threads``: intra-op threads of the CPU provider. ``spinning=False`` makes idle
    worker threads sleep instead of busy-waiting for the next run (fairer on a shared
    CPU, and to other work in the same process). Raises LorspError when a provider is
    not available, or when the session does not end up with the requested providers
    (the first one first).
    """
    names = resolve_providers(providers)
    load_onnx_checked(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=names)
    except Exception as exc:  # onnxruntime raises its own exception types per failure
        raise LorspError(f"onnxruntime cannot open {path} with {', '.join(names)}: {first_line(exc)}") from None
    session.disable_fallback()
    used = session.get_providers()
    if used[0] != names[0] or not set(names) <= set(used):
        raise LorspError(f"onnxruntime session for {path} uses {', '.join(used)} instead of {', '.join(names)}")
    return session


def as_array(images: ImageSource) -> np.ndarray:
    """``images`` as a C-contiguous float32 numpy array (what onnxruntime reads)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    return np.ascontiguousarray(images, dtype=np.float32)


def run_logits(session: ort.InferenceSession, images: ImageSource, batch_size: int = 32,
               timeout: float | None = None) -> np.ndarray:
    """Logits of prompted ``images`` (N, 3, L, L), run in batches of ``batch_size``.

    ``timeout``: seconds the whole call may take; past them onnxruntime's terminate flag stops the
    running graph (a loop of any length included) and the call is one LorspError line.
    """
    images = as_array(images)
    run_options = ort.RunOptions()
    run_options.log_severity_level = 4  # the failure is reported once, as the error line below
    timer = None if timeout is None else threading.Timer(timeout, setattr, (run_options, "terminate", True))
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        out = [session.run([OUTPUT_NAME], {INPUT_NAME: images[i:i + batch_size]}, run_options)[0]
               for i in range(0, len(images), batch_size)]
    except Exception as exc:  # onnxruntime's own exception types: a graph that fails on real input
        if run_options.terminate:
            raise LorspError(f"the ONNX model ran past its time limit of {timeout:g} s on a batch of "
                             f"{len(images[:batch_size])} images and was stopped") from None
        raise LorspError(f"the ONNX model failed on a batch of {len(images[:batch_size])} images "
                         f"{tuple(images.shape[1:])}: {first_line(exc)}") from None
    finally:
        if timer is not None:
            timer.cancel()
    logits = np.concatenate(out).astype(np.float32, copy=False)
    if not np.isfinite(logits).all():
        raise LorspError(f"the ONNX model gave non-finite logits (NaN or infinity) for "
                         f"{int((~np.isfinite(logits)).any(1).sum())} of {len(logits)} images")
    return logits
