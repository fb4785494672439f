"""Checks of exported ONNX files against PyTorch: logit parity on real images, accuracy per precision."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from deploy.onnx_runtime import as_array, make_session, run_logits
from lorsp.errors import LorspError
from lorsp.model import PromptedClassifier

FP32_TOLERANCE = 1e-4
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
