"""Checks of exported ONNX files against PyTorch: logit parity on real images, accuracy per precision."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from deploy.onnx_runtime import as_array, make_session, run_logits
from lorsp.plumbing.errors import LorspError
from lorsp.model import PromptedClassifier

FP32_TOLERANCE = 1e-4
PARITY_TOLERANCES = {"fp32": FP32_TOLERANCE, "fp16": 0.01, "int8": 0.4, "int8-trt": 0.4}
"""Largest |logit difference| from PyTorch each precision may show on the check images, or the export
fails: absolute for fp32, relative (a share of the largest |PyTorch logit| on those images) for the
others, whose error grows with the logits' scale (docs/onnx.md gives the measurements)."""
RELATIVE_PARITY = {"fp32": False, "fp16": True, "int8": True, "int8-trt": True}
ACCURACY_DROP_LIMITS = {"fp32": 0.0, "fp16": 0.01, "int8": 0.05, "int8-trt": 0.05}
"""Largest accuracy drop vs fp32 on the validation split (in [0, 1] units) before the export fails."""
Dataset = Sequence[tuple[torch.Tensor, int]]  # items (image, label), e.g. a split of lorsp.data
Prompt = Callable[[torch.Tensor], torch.Tensor]  # model.prompted



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
        yield as_array(prompt(x) if prompt is not None else x), np.asarray([y for _, y in items], dtype=np.int64)


def prompted_arrays(dataset: Dataset, prompt: Prompt | None, limit: int | None = None,
                    batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """:func:`prompted_batches` in two arrays (for calibration sets: they are held in memory)."""
    images, labels = zip(*prompted_batches(dataset, prompt, limit, batch_size))
    return np.concatenate(images), np.concatenate(labels)


def verify_onnx(path: str | Path, model: PromptedClassifier, images: torch.Tensor,
                providers: Iterable[str] | None = ("cpu",), tolerance: float | None = FP32_TOLERANCE,
                batch_size: int = 32, relative: bool = False) -> dict[str, Any]:
    """Compare the ONNX graph with PyTorch on real ``images`` (N, 3, L, L) in [0, 1].

    The model's prompt is applied in PyTorch, then both run backbone and head on the
    same prompted images. Returns the largest |logit difference| and the share of
    equal predictions; raises LorspError when the difference exceeds ``tolerance``
    (None: report only), or with ``relative`` ``tolerance`` times the largest |PyTorch logit|.
    Puts ``model`` in eval mode.
    """
    model = model.eval()
    with torch.no_grad():
        prompted = model.prompted(images)
        reference = model.classify(prompted).numpy()
    session = make_session(path, providers)
    logits = run_logits(session, prompted, batch_size)
    diff = float(np.max(np.abs(logits - reference)))
    scale = float(np.max(np.abs(reference)))
    result = {"samples": int(len(images)), "max_abs_logit_diff": diff, "max_abs_logit": scale,
              "relative_logit_diff": diff / scale if scale > 0 else float("inf"),
              "prediction_agreement": float(np.mean(logits.argmax(1) == reference.argmax(1))),
              "tolerance": tolerance, "tolerance_kind": "relative" if relative else "absolute",
              "providers": session.get_providers()}
    allowed = None if tolerance is None else tolerance * scale if relative else tolerance
    if allowed is not None and not diff <= allowed:
        bound = f"{tolerance:g} x the largest |logit| {scale:.3g} = {allowed:.3g}" if relative else f"{tolerance:g}"
        raise LorspError(f"{path}: logits differ from PyTorch by up to {diff:.3g} on {len(images)} images "
                         f"(allowed {bound})")
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


def check_accuracy_drop(accuracy: Mapping[str, Mapping[str, float]],
                        limits: Mapping[str, float] = ACCURACY_DROP_LIMITS) -> None:
    """LorspError when a precision's accuracy drop vs fp32 exceeds its limit."""
    for precision, a in accuracy.items():
        if a["drop_vs_fp32"] > limits[precision] + 1e-12:
            raise LorspError(f"{precision}: accuracy {a['accuracy']:.4f} on {a['samples']} validation images is "
                             f"{100 * a['drop_vs_fp32']:.2f} points below fp32 (allowed {100 * limits[precision]:g})")


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
