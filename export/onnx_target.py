"""``--target onnx``: any checkpoint -> its backbone and head as checked ONNX files, with a manifest.

    lorsp-export --target onnx runs/x/model.pt -o runs/x/onnx --precision fp32 int8 --providers cpu

The graph reads the prompted image (docs/onnx.md), so every prompt works: ``none``, ``vp``,
``lorvp`` and ``lorsp`` alike. Steps, all in ``DIR.partial`` (renamed to ``DIR`` at the
end; removed on any error):

1. resolve the execution providers (an unavailable one stops here, before anything is read);
2. read the checkpoint (``weights_only``);
3. write ``backbone.onnx`` and the other precisions (:func:`export_onnx_files`):
   parity of every file against PyTorch on the first ``N`` test images and the accuracy of
   every precision on the validation split, its drop against fp32 (each within its bound of
   :mod:`export.onnx_checks`, or the export fails), int8 calibrated on the training split
   (``int8`` for the CPU, ``int8-trt`` for TensorRT), MACs per image;
4. write ``manifest.json`` (sha256 of every file; the checks under ``onnx``).

:func:`write_onnx_artifacts` is step 3 alone, for ``--target all``.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import onnx
import torch

from deploy.onnx_runtime import INPUT_NAME, ONNX_FILES, OUTPUT_NAME, PRECISIONS, resolve_providers
from export.bundle_writer import check_dataset, read_source, write_export
from export.onnx_checks import (PARITY_TOLERANCES, RELATIVE_PARITY, Dataset, check_accuracy_drop, precision_accuracy,
                                prompted_arrays, verify_onnx)
from export.onnx_convert import int8_scheme, write_fp16, write_int8
from export.onnx_metadata import metadata
from export.onnx_graph import export_backbone_onnx
from export.onnx_macs import count_macs
from lorsp.data import Splits, create_splits, dataset_paths, load_split_images
from lorsp.data.splits import check_same_classes
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.publish import claim_output
from lorsp.model import PromptedClassifier

ON_ACCELERATOR = ("backbone and head (backbone*.onnx); input prompted_image = image + prompt, "
                  "normalisation inside the graph")


@dataclass(frozen=True)
class CheckImages:
    """Real images the ONNX checks read: the first ``N`` test images, and the model's splits."""

    dataset: str
    test: torch.Tensor
    splits: Splits


def load_check_images(config: dict[str, Any], dataset: str | None, samples: int, classes: list[str]) -> CheckImages:
    """The first ``samples`` test images of ``dataset`` (default: the model's) and its seeded splits, which must hold
    the model's ``classes``."""
    dataset = check_dataset(config, dataset)
    test, _ = load_split_images(dataset, config["image_size"], samples, config.get("data_root"))
    splits = create_splits(dataset, config["image_size"], root=config.get("data_root"))
    check_same_classes(dataset, splits.classes, classes)  # the ONNX check scores its accuracy on val
    return CheckImages(dataset, test, splits)


def write_onnx_artifacts(model: PromptedClassifier, stage: Path, *, images: CheckImages,
                         precisions: Sequence[str], providers: Sequence[str]) -> dict[str, Any]:
    """Step 3: the ONNX files of ``precisions`` in ``stage``, checked; returns the manifest section ``onnx``."""
    checks = export_onnx_files(model, stage, precisions, check_images=images.test, calibration=images.splits.train,
                               validation=images.splits.val, providers=providers)
    return {"onnx": {"dataset": images.dataset, "parity_split": "test", "accuracy_split": "val",
                     "on_accelerator": ON_ACCELERATOR, **checks}}


ONNX_BYTES_PER_PARAMETER = {"fp32": 4, "fp16": 2, "int8": 1}


def onnx_bytes(model: PromptedClassifier, precisions: Sequence[str]) -> int:
    """About how many bytes the ONNX files of ``precisions`` take: the backbone's and head's weights in each,
    and 1 MiB for graphs and the manifest."""
    parameters = sum(p.numel() for p in model.backbone.parameters()) + sum(p.numel() for p in model.head.parameters())
    chosen = {"fp32", *precisions}
    return parameters * sum(ONNX_BYTES_PER_PARAMETER[p] for p in chosen if p in ONNX_BYTES_PER_PARAMETER) + (1 << 20)


def export_onnx(checkpoint: str | Path, out: str | Path, *, precisions: Sequence[str] = ("fp32",),
                providers: Sequence[str] = ("cpu",), samples: int = 64, force: bool = False,
                dataset: str | None = None) -> dict[str, Any]:
    """Write the ONNX export of ``checkpoint`` to ``out``; returns the manifest."""
    providers = resolve_providers(providers)
    with claim_output(out, force, sources=[checkpoint]) as claim:
        source = read_source(checkpoint)
        claim.require_space(onnx_bytes(source.model, precisions))
        claim.add_inputs(dataset_paths(check_dataset(source.config, dataset), source.config.get("data_root")))
        images = load_check_images(source.config, dataset, samples, source.state["classes"])
        section = functools.partial(write_onnx_artifacts, source.model, images=images, precisions=precisions,
                                    providers=providers)
        return write_export(claim, "onnx", source, [section])



def export_onnx_files(model: PromptedClassifier, directory: str | Path, precisions: Iterable[str] = ("fp32",), *,
                      check_images: torch.Tensor, calibration: Dataset | None = None, validation: Dataset | None = None,
                      providers: Iterable[str] | None = ("cpu",), calibration_count: int = 128,
                      validation_limit: int | None = None, batch_size: int = 32,
                      enforce: bool = True) -> dict[str, Any]:
    """Write the ONNX files of ``precisions`` into ``directory`` and check them; returns the checks.

    fp32 is always written (the source of the others and the reference). Each file's
    logits are compared with PyTorch on ``check_images`` (raw images in [0, 1]); with
    ``validation`` (a split of (image, label)), each precision's accuracy and drop vs fp32
    are measured; ``int8`` and ``int8-trt`` need ``calibration`` (training split), of which the
    first ``calibration_count`` images are used. With ``enforce`` (always, but for
    measuring the bounds: ``benchmarks/onnx_parity.py``) a logit difference above
    :data:`~export.onnx_checks.PARITY_TOLERANCES` or a drop above
    :data:`~export.onnx_checks.ACCURACY_DROP_LIMITS` fails the export with one line.
    """
    precisions = list(dict.fromkeys(["fp32", *precisions]))
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise LorspError(f"unknown precision {bad[0]!r}; choose from {', '.join(PRECISIONS)}")
    int8 = {"int8": int8_scheme(providers), "int8-trt": "int8-symmetric"}
    int8 = {p: scheme for p, scheme in int8.items() if p in precisions}
    if int8 and calibration is None:
        raise LorspError("int8 needs calibration images (the training split)")
    providers = resolve_providers(providers)
    directory = Path(directory)
    paths = {"fp32": export_backbone_onnx(model, directory / ONNX_FILES["fp32"])}
    if "fp16" in precisions:
        paths["fp16"] = write_fp16(paths["fp32"], directory / ONNX_FILES["fp16"])
    if int8:
        images, _ = prompted_arrays(calibration, model.prompted, limit=calibration_count)
    for precision, activations in int8.items():
        paths[precision] = write_int8(paths["fp32"], directory / ONNX_FILES[precision], images,
                                      activations=activations, precision=precision)
    image_size = int(model.config["image_size"])
    result: dict[str, Any] = {
        "files": {p: f.name for p, f in paths.items()}, "input": INPUT_NAME, "output": OUTPUT_NAME,
        "image_size": image_size, "providers": providers, "macs_per_image": count_macs(paths["fp32"], image_size),
        "parity": {p: verify_onnx(f, model, check_images, providers, PARITY_TOLERANCES[p] if enforce else None,
                                  relative=RELATIVE_PARITY[p]) for p, f in paths.items()},
        "quantisation": {p: json.loads(metadata(onnx.load(str(paths[p])))["lorsp.quantisation"]) for p in int8}}
    if "int8" in paths:
        result["int8_activations"] = int8["int8"]
    if "int8-trt" in paths:
        result["tensorrt_rules"] = {"int8-trt": "passed (export.onnx_tensorrt: zero points 0, int8 types, "
                                                "per-channel weights only, standard-domain QDQ)"}
    if validation is not None:
        result["accuracy"] = precision_accuracy(paths, validation, providers, batch_size, prompt=model.prompted,
                                                limit=validation_limit)
        if enforce:
            check_accuracy_drop(result["accuracy"])
    return result
