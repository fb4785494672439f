"""ONNX export of the frozen backbone and its head, checked against PyTorch.

The graph is ``PromptedClassifier.classify``: it takes the *prompted* image and
returns the logits, with the backbone's normalisation inside::

    prompted_image (N, 3, L, L) float32 = x + prompt(x), x in [0, 1]  ->  logits (N, classes)

The prompt (instance-dependent for LoRSP, and the spiking part) stays outside: it
runs on the host or the neuromorphic chip, and its sum with the image is what this
graph reads. The batch axis is dynamic; ``L`` is fixed at the model's image size
(TensorFlow "same" padding is frozen to constants for it, see
:func:`static_padding_copy`).

Precisions: ``fp32`` (the export, parity <= 1e-4 on real images), ``fp16``
(weights and activations float16, inputs and outputs float32) and ``int8`` (static
QDQ quantisation calibrated on real prompted training images). Every file is
written atomically and passes ``onnx.checker`` (full check) before it appears.
Sessions never fall back silently to another execution provider.
"""
from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader
from timm.layers import Conv2dSame
from timm.layers.padding import pad_same_arg
from torch import nn
from torch.nn import functional as F

from lorsp.errors import LorspError
from lorsp.fileio import atomic_write
from lorsp.model import PromptedClassifier

INPUT_NAME = "prompted_image"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17
PRECISIONS = ("fp32", "fp16", "int8")
ONNX_FILES = {"fp32": "backbone.onnx", "fp16": "backbone.fp16.onnx", "int8": "backbone.int8.onnx"}
FP32_TOLERANCE = 1e-4
INT8_SCHEMES = ("uint8", "int8-symmetric")
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
Dataset = Sequence[tuple[torch.Tensor, int]]  # items (image, label), e.g. a split of lorsp.data
Prompt = Callable[[torch.Tensor], torch.Tensor]  # model.prompted


# --------------------------------------------------------------------------- export


class ClassifierGraph(nn.Module):
    """``model.classify`` as a module of its own: the graph that is exported."""

    def __init__(self, model: PromptedClassifier):
        super().__init__()
        self.model = model

    def forward(self, prompted_image: torch.Tensor) -> torch.Tensor:
        return self.model.classify(prompted_image)


def _same_padding_convs(module: nn.Module) -> list[str]:
    return [name for name, m in module.named_modules() if isinstance(m, Conv2dSame)]


def _input_sizes(module: nn.Module, names: Sequence[str], example: torch.Tensor) -> dict[str, tuple[int, int]]:
    """Spatial input size of each submodule ``names`` in a forward pass of ``example``."""
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [module.get_submodule(name).register_forward_pre_hook(
        lambda _m, args, name=name: sizes.__setitem__(name, tuple(args[0].shape[-2:])))
        for name in names]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


class _PaddedConv(torch.autograd.Function):
    """``conv2d(pad(x, pads))``, exported as one ONNX ``Conv`` with (asymmetric) ``pads``."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, pads, dilation, groups):  # noqa: ARG004 - never trained
        return F.conv2d(F.pad(x, pads), weight, bias, stride, 0, dilation, groups)

    @staticmethod
    def symbolic(g, x, weight, bias, stride, pads, dilation, groups):
        left, right, top, bottom = pads
        inputs = [x, weight] if bias is None else [x, weight, bias]
        return g.op("Conv", *inputs, strides_i=list(stride), pads_i=[top, left, bottom, right],
                    dilations_i=list(dilation), group_i=groups)


class StaticSameConv(nn.Conv2d):
    """timm's ``Conv2dSame`` with its TensorFlow "same" padding fixed for one input size."""

    def __init__(self, conv: nn.Conv2d, input_size: tuple[int, int]):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation,
                         conv.groups, conv.bias is not None)
        self.load_state_dict(conv.state_dict())
        self.pads = tuple(int(p) for p in pad_same_arg(list(input_size), list(conv.kernel_size),
                                                       list(conv.stride), list(conv.dilation)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _PaddedConv.apply(x, self.weight, self.bias, self.stride, self.pads, self.dilation, self.groups)


def static_padding_copy(model: PromptedClassifier, image_size: int) -> ClassifierGraph:
    """An eval-mode copy of ``model.classify`` with "same" padding fixed for ``image_size``.

    timm's ``Conv2dSame`` computes its padding from the input's shape at run time,
    which traces into Shape/Ceil/Pad chains; for a fixed image size the pads are
    constants, and one ONNX ``Conv`` with ``pads`` computes the same.
    """
    graph = ClassifierGraph(copy.deepcopy(model)).eval()
    names = _same_padding_convs(graph)
    sizes = _input_sizes(graph, names, torch.zeros(1, 3, image_size, image_size))
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = graph.get_submodule(parent_name)
        setattr(parent, child, StaticSameConv(getattr(parent, child), sizes[name]))
    return graph


def _torch_export(graph: nn.Module, image_size: int, path: Path, opset: int) -> None:
    example = torch.rand(2, 3, image_size, image_size)
    dynamic = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    try:
        with torch.no_grad():
            torch.onnx.export(graph, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True)
    except (ValueError, RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise LorspError(f"torch.onnx.export failed (opset {opset}): {_first_line(exc)}") from None


def _describe(path: Path, model: PromptedClassifier, image_size: int) -> None:
    """Write what the graph expects and returns into the file's metadata."""
    proto = onnx.load(str(path))
    proto.doc_string = (f"lorsp backbone + head. Input {INPUT_NAME!r}: float32 (N, 3, L, L) = image in [0, 1] "
                        f"plus the visual prompt; normalisation is inside. Output {OUTPUT_NAME!r}: (N, classes).")
    metadata = {"lorsp.backbone": str(model.config.get("backbone")), "lorsp.head": str(model.config.get("head")),
                "lorsp.prompt": str(model.config.get("prompt")), "lorsp.image_size": str(image_size),
                "lorsp.classes": "\n".join(model.classes)}
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(path))


def write_checked(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` to ``path`` only if it is ONNX passing the full check.

    On any failure ``path`` keeps its old content (or stays absent) and ``tmp`` is removed.
    """
    def write_and_check(tmp: Path) -> None:
        write(tmp)
        load_onnx_checked(tmp)

    return atomic_write(path, write_and_check)


def export_backbone_onnx(model: PromptedClassifier, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export backbone and head (``model.classify``) to ``path``; returns the path.

    Input ``prompted_image`` (N, 3, L, L) float32 in the model's input space, before
    normalisation, L the model's image size; output ``logits`` (N, classes); N is dynamic.
    """
    return _export_at(model, path, opset, int(model.config["image_size"]))


def _export_at(model: PromptedClassifier, path: str | Path, opset: int, image_size: int) -> Path:
    graph = static_padding_copy(model, image_size)

    def write(tmp: Path) -> None:
        _torch_export(graph, image_size, tmp, opset)
        _describe(tmp, model, image_size)

    return write_checked(path, write)


# --------------------------------------------------------------------------- reading and sessions


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def check_onnx_model(proto: onnx.ModelProto, source: str | Path) -> None:
    """``onnx.checker`` with the full check (shape inference included); LorspError if it fails."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise LorspError(f"{source} fails the ONNX check: {_first_line(exc)}") from None


def load_onnx_checked(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file and check it; a missing, truncated or non-ONNX file is one LorspError."""
    path = Path(path)
    if not path.is_file():
        raise LorspError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors have no common public base class
        raise LorspError(f"{path} is not a readable ONNX file (truncated or corrupt): {_first_line(exc)}") from None
    if not proto.graph.node or proto.ir_version <= 0:
        raise LorspError(f"{path} is not an ONNX model (no graph or IR version)")
    check_onnx_model(proto, path)
    return proto


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
        raise LorspError(f"onnxruntime cannot open {path} with {', '.join(names)}: {_first_line(exc)}") from None
    session.disable_fallback()
    used = session.get_providers()
    if used[0] != names[0] or not set(names) <= set(used):
        raise LorspError(f"onnxruntime session for {path} uses {', '.join(used)} instead of {', '.join(names)}")
    return session


def _as_array(images: ImageSource) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    return np.ascontiguousarray(images, dtype=np.float32)


def run_logits(session: ort.InferenceSession, images: ImageSource, batch_size: int = 32) -> np.ndarray:
    """Logits of prompted ``images`` (N, 3, L, L), run in batches of ``batch_size``."""
    images = _as_array(images)
    out = [session.run([OUTPUT_NAME], {INPUT_NAME: images[i:i + batch_size]})[0]
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- parity and accuracy


@torch.no_grad()
def prompted_batches(dataset: Dataset, prompt: Prompt | None, limit: int | None = None,
                     batch_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The first ``limit`` items of ``dataset`` in batches of (prompted images float32, labels int64).

    ``prompt`` is ``model.prompted`` for raw images in [0, 1], or None when the
    dataset already holds what the graph reads.
    """
    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    if count == 0:
        raise LorspError("no images to run: the dataset is empty")
    for start in range(0, count, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, count))]
        x = torch.stack([image for image, _ in items])
        yield _as_array(prompt(x) if prompt is not None else x), np.asarray([y for _, y in items], dtype=np.int64)


def prompted_arrays(dataset: Dataset, prompt: Prompt | None, limit: int | None = None,
                    batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """:func:`prompted_batches` in two arrays (for calibration sets: they are held in memory)."""
    images, labels = zip(*prompted_batches(dataset, prompt, limit, batch_size))
    return np.concatenate(images), np.concatenate(labels)


def verify_onnx(path: str | Path, model: PromptedClassifier, images: torch.Tensor,
                providers: Iterable[str] | None = ("cpu",), tolerance: float | None = FP32_TOLERANCE,
                batch_size: int = 32) -> dict[str, Any]:
    """Compare the ONNX graph with PyTorch on real ``images`` (N, 3, L, L) in [0, 1].

    The model's prompt is applied in PyTorch, then both run backbone and head on the
    same prompted images. Returns the largest |logit difference| and the share of
    equal predictions; raises LorspError when the difference exceeds ``tolerance``
    (None: report only, for fp16 and int8). Puts ``model`` in eval mode.
    """
    model = model.eval()
    with torch.no_grad():
        prompted = model.prompted(images)
        reference = model.classify(prompted).numpy()
    session = make_session(path, providers)
    logits = run_logits(session, prompted, batch_size)
    diff = float(np.max(np.abs(logits - reference)))
    result = {"samples": int(len(images)), "max_abs_logit_diff": diff,
              "prediction_agreement": float(np.mean(logits.argmax(1) == reference.argmax(1))),
              "tolerance": tolerance, "providers": session.get_providers()}
    if tolerance is not None and not diff <= tolerance:
        raise LorspError(f"{path}: logits differ from PyTorch by up to {diff:.3g} on {len(images)} images "
                         f"(allowed {tolerance:g})")
    return result


def _accuracies(paths: Mapping[str, str | Path], dataset: Dataset, providers: Iterable[str] | None,
                batch_size: int, prompt: Prompt | None, limit: int | None) -> tuple[dict[str, float], int]:
    """Top-1 accuracy of each file on the same prompted images (streamed), and their number."""
    sessions = {name: make_session(path, providers) for name, path in paths.items()}
    correct, seen = dict.fromkeys(sessions, 0), 0
    for images, labels in prompted_batches(dataset, prompt, limit, batch_size):
        for name, session in sessions.items():
            correct[name] += int(np.sum(run_logits(session, images, batch_size).argmax(1) == labels))
        seen += len(labels)
    return {name: c / seen for name, c in correct.items()}, seen


def measure_accuracy(path: str | Path, dataset: Dataset, providers: Iterable[str] | None = ("cpu",),
                     batch_size: int = 32, *, prompt: Prompt | None, limit: int | None = None) -> float:
    """Top-1 accuracy of the ONNX graph on ``dataset`` (items (image, label)).

    ``prompt`` (keyword, required so it is never forgotten): ``model.prompted`` for
    raw images, None for images already prompted.
    """
    accuracy, _ = _accuracies({"model": path}, dataset, providers, batch_size, prompt, limit)
    return accuracy["model"]


def precision_accuracy(paths: Mapping[str, str | Path], dataset: Dataset, providers: Iterable[str] | None = ("cpu",),
                       batch_size: int = 32, *, prompt: Prompt | None,
                       limit: int | None = None) -> dict[str, dict[str, float]]:
    """Accuracy of each precision's file on the same images and its drop vs fp32.

    ``paths`` maps precision -> file and must hold ``fp32``; ``drop_vs_fp32`` is
    ``accuracy(fp32) - accuracy(precision)`` (positive: worse), in [0, 1] units.
    """
    if "fp32" not in paths:
        raise LorspError("the accuracy drop is measured against fp32: give its file too")
    accuracy, seen = _accuracies(paths, dataset, providers, batch_size, prompt, limit)
    return {p: {"accuracy": a, "drop_vs_fp32": accuracy["fp32"] - a, "samples": seen} for p, a in accuracy.items()}


# --------------------------------------------------------------------------- fp16 and int8


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
    return write_checked(dst, lambda tmp: onnx.save(half, str(tmp)))


class ImageCalibrationReader(CalibrationDataReader):
    """onnxruntime calibration data: prompted images in batches of ``batch_size``."""

    def __init__(self, images: ImageSource, batch_size: int = 16):
        self.images = _as_array(images)
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
        return {"activation_type": QuantType.QInt8, "extra_options": {"ActivationSymmetric": True}}
    raise LorspError(f"unknown int8 activation scheme {activations!r}; choose from {', '.join(INT8_SCHEMES)}")


def write_int8(src: str | Path, dst: str | Path, calibration_images: ImageSource, *,
               activations: str = "uint8", per_channel: bool = True, batch_size: int = 16) -> Path:
    """Write ``dst``: ``src`` statically quantised to 8 bits (QDQ), calibrated on real images.

    ``calibration_images``: prompted training images (N, 3, L, L), what the graph
    reads in use (``prompted_arrays(splits.train, model.prompted, limit=128)``).
    The graph is first pre-processed (shape inference, folding) by ``quant_pre_process``;
    weights are int8 per output channel, activations MinMax-calibrated and either
    ``uint8`` (asymmetric: onnxruntime's CPU provider fuses every Conv and Add into
    QLinear ops) or ``int8-symmetric`` (what TensorRT expects; on CPU the depthwise
    convolutions would stay float, see docs/onnx.md).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    options = _quantize_options(activations)
    images = _as_array(calibration_images)
    _check_calibration(images, load_onnx_checked(src))
    reader = ImageCalibrationReader(images, batch_size)

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="lorsp-int8-") as work:
            prepared = Path(work) / "prepared.onnx"
            try:
                quant_pre_process(str(src), str(prepared))
                quantize_static(str(prepared), str(tmp), reader, quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, weight_type=QuantType.QInt8, **options)
            except Exception as exc:  # onnxruntime's own exception types
                raise LorspError(f"int8 quantisation of {src} failed: {_first_line(exc)}") from None

    return write_checked(dst, write)


# --------------------------------------------------------------------------- MACs


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
            path = _export_at(model_or_onnx, Path(work) / "graph.onnx", DEFAULT_OPSET, int(image_size))
            return count_macs(path, image_size)
    proto = model_or_onnx if isinstance(model_or_onnx, onnx.ModelProto) else load_onnx_checked(model_or_onnx)
    inferred = _fixed_batch(proto, int(image_size))
    shapes = _shapes(inferred)
    return sum(_node_macs(node, shapes) for node in inferred.graph.node)


# --------------------------------------------------------------------------- all of it


def export_onnx_files(model: PromptedClassifier, directory: str | Path, precisions: Iterable[str] = ("fp32",), *,
                      check_images: torch.Tensor, calibration: Dataset | None = None, validation: Dataset | None = None,
                      providers: Iterable[str] | None = ("cpu",), calibration_count: int = 128,
                      validation_limit: int | None = None, batch_size: int = 32) -> dict[str, Any]:
    """Write the ONNX files of ``precisions`` into ``directory`` and check them; returns the checks.

    fp32 is always written (the source of the others and the reference). Each file's
    logits are compared with PyTorch on ``check_images`` (raw images in [0, 1]; fp32
    must be within 1e-4); with ``validation`` (a split of (image, label)), each
    precision's accuracy and drop vs fp32 are measured; int8 needs ``calibration``
    (training split), of which the first ``calibration_count`` images are used.
    """
    precisions = list(dict.fromkeys(["fp32", *precisions]))
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise LorspError(f"unknown precision {bad[0]!r}; choose from {', '.join(PRECISIONS)}")
    if "int8" in precisions and calibration is None:
        raise LorspError("int8 needs calibration images (the training split)")
    providers = resolve_providers(providers)
    directory = Path(directory)
    paths = {"fp32": export_backbone_onnx(model, directory / ONNX_FILES["fp32"])}
    if "fp16" in precisions:
        paths["fp16"] = write_fp16(paths["fp32"], directory / ONNX_FILES["fp16"])
    if "int8" in precisions:
        images, _ = prompted_arrays(calibration, model.prompted, limit=calibration_count)
        paths["int8"] = write_int8(paths["fp32"], directory / ONNX_FILES["int8"], images,
                                   activations=int8_scheme(providers))
    image_size = int(model.config["image_size"])
    result: dict[str, Any] = {
        "files": {p: f.name for p, f in paths.items()}, "input": INPUT_NAME, "output": OUTPUT_NAME,
        "image_size": image_size, "providers": providers, "macs_per_image": count_macs(paths["fp32"], image_size),
        "parity": {p: verify_onnx(f, model, check_images, providers, FP32_TOLERANCE if p == "fp32" else None)
                   for p, f in paths.items()}}
    if "int8" in paths:
        result["int8_activations"] = int8_scheme(providers)
    if validation is not None:
        result["accuracy"] = precision_accuracy(paths, validation, providers, batch_size, prompt=model.prompted,
                                                limit=validation_limit)
    return result
