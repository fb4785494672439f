"""``--target onnx``: any checkpoint -> its backbone and head as checked ONNX files, with a manifest.

    lorsp-export --target onnx runs/x/model.pt -o runs/x/onnx --precision fp32 int8 --providers cpu

The graph reads the prompted image (docs/onnx.md), so every prompt works: ``none``, ``vp``,
``lorvp`` and ``lorsp`` alike. Steps, all in ``DIR.partial`` (renamed to ``DIR`` at the
end; removed on any error):

1. resolve the execution providers (an unavailable one stops here, before anything is read);
2. read the checkpoint (``weights_only``);
3. write ``backbone.onnx`` and the other precisions (:func:`export.onnx.export_onnx_files`):
   parity of every file against PyTorch on the first ``N`` test images (fp32 within 1e-4 or
   the export fails), the accuracy of every precision on the validation split and its drop
   against fp32, int8 calibrated on the training split, MACs per image;
4. write ``manifest.json`` (sha256 of every file; the checks under ``onnx``).

:func:`write_onnx_artifacts` is step 3 alone, for ``--target all``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from export.bundle_writer import read_source, write_export
from export.onnx import export_onnx_files, resolve_providers
from hw_sim.simulate import load_test_images
from lorsp.data import Splits, create_splits
from lorsp.fileio import check_output_dir
from lorsp.model import PromptedClassifier

ON_ACCELERATOR = ("backbone and head (backbone*.onnx); input prompted_image = image + prompt, "
                  "normalisation inside the graph")


@dataclass(frozen=True)
class CheckImages:
    """Real images the ONNX checks read: the first ``N`` test images, and the model's splits."""

    dataset: str
    test: torch.Tensor
    splits: Splits


def load_check_images(config: dict[str, Any], dataset: str | None, samples: int) -> CheckImages:
    """The first ``samples`` test images of ``dataset`` (default: the model's) and its seeded splits."""
    dataset = dataset or config["dataset"]
    test, _ = load_test_images(dataset, config["image_size"], samples, config.get("data_root"))
    return CheckImages(dataset, test, create_splits(dataset, config["image_size"], root=config.get("data_root")))


def write_onnx_artifacts(model: PromptedClassifier, stage: Path, *, images: CheckImages,
                         precisions: Sequence[str], providers: Sequence[str]) -> dict[str, Any]:
    """Step 3: the ONNX files of ``precisions`` in ``stage``, checked; returns the manifest section ``onnx``."""
    checks = export_onnx_files(model, stage, precisions, check_images=images.test, calibration=images.splits.train,
                               validation=images.splits.val, providers=providers)
    return {"onnx": {"dataset": images.dataset, "parity_split": "test", "accuracy_split": "val",
                     "on_accelerator": ON_ACCELERATOR, **checks}}


def export_onnx(checkpoint: str | Path, out: str | Path, *, precisions: Sequence[str] = ("fp32",),
                providers: Sequence[str] = ("cpu",), samples: int = 64, force: bool = False,
                dataset: str | None = None) -> dict[str, Any]:
    """Write the ONNX export of ``checkpoint`` to ``out``; returns the manifest."""
    providers = resolve_providers(providers)
    out = check_output_dir(out, force)
    source = read_source(checkpoint)
    images = load_check_images(source.config, dataset, samples)
    section = functools.partial(write_onnx_artifacts, source.model, images=images, precisions=precisions,
                                providers=providers)
    return write_export(out, "onnx", source, [section])
