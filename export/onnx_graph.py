"""The ONNX graph of the frozen backbone and its head: ``model.classify`` with static padding.

The graph is ``PromptedClassifier.classify``: it takes the *prompted* image and
returns the logits, with the backbone's normalisation inside (the contract is in
:mod:`deploy.onnx_runtime`). The prompt (instance-dependent for LoRSP, and the
spiking part) stays outside: it runs on the host or the neuromorphic chip, and its
sum with the image is what this graph reads. The batch axis is dynamic; ``L`` is
fixed at the model's image size (TensorFlow "same" padding is frozen to constants for
it, see :func:`static_padding_copy`). Every file is written atomically and passes
``onnx.checker`` (full check) before it appears.
"""
from __future__ import annotations

import copy
import inspect
import warnings
from pathlib import Path
from typing import Callable, Sequence

import onnx
import torch
from timm.layers import Conv2dSame
from timm.layers.padding import pad_same_arg
from torch import nn
from torch.nn import functional as F

from export.onnx_metadata import backbone_metadata, update_metadata
from deploy.onnx_runtime import INPUT_NAME, OUTPUT_NAME, first_line, load_onnx_checked
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import atomic_write
from lorsp.model import PromptedClassifier

DEFAULT_OPSET = 17


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


# torch 2.9 made the dynamo exporter the default (it needs onnxscript and writes another graph); the
# TorchScript exporter, asked for by name where torch has the choice, writes the same graph on every
# supported torch (2.3.1 has only that one).
_EXPORTER = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _torch_export(graph: nn.Module, image_size: int, path: Path, opset: int) -> None:
    example = torch.rand(2, 3, image_size, image_size)
    dynamic = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export",
                                    category=DeprecationWarning)
            torch.onnx.export(graph, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True, **_EXPORTER)
    except (ValueError, RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise LorspError(f"torch.onnx.export failed (opset {opset}): {first_line(exc)}") from None


def _describe(path: Path, model: PromptedClassifier, image_size: int) -> None:
    """Write what the graph expects and returns into the file's metadata."""
    proto = onnx.load(str(path))
    proto.doc_string = (f"lorsp backbone + head. Input {INPUT_NAME!r}: float32 (N, 3, L, L) = image in [0, 1] "
                        f"plus the visual prompt; normalisation is inside. Output {OUTPUT_NAME!r}: (N, classes).")
    update_metadata(proto, backbone_metadata(model, image_size))
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
    return export_at(model, path, opset, int(model.config["image_size"]))


def export_at(model: PromptedClassifier, path: str | Path, opset: int, image_size: int) -> Path:
    """:func:`export_backbone_onnx` at an explicit ``image_size`` (MAC counting exports at any size)."""
    graph = static_padding_copy(model, image_size)

    def write(tmp: Path) -> None:
        _torch_export(graph, image_size, tmp, opset)
        _describe(tmp, model, image_size)

    return write_checked(path, write)
