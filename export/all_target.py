"""``--target all``: a LoRSP checkpoint -> the Loihi bundle and the ONNX files in one directory.

    lorsp-export --target all runs/x/model.pt -o runs/x/deploy --precision fp32 fp16 int8

One directory, one ``manifest.json`` listing every file: what ``lorsp-hwsim`` and
``lorsp-cosim`` open. The Loihi section (:func:`export.loihi.write_loihi_artifacts`) and the
ONNX section (:func:`export.onnx_target.write_onnx_artifacts`, under ``onnx``) are checked on
the same first ``N`` test images; a ``finish`` step (``lorsp-export``'s chip simulation) then
runs on the staged bundle as for ``--target loihi``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

from export.bundle_writer import Finish, check_dataset, read_source, write_export
from export.loihi import write_loihi_artifacts
from deploy.onnx_runtime import resolve_providers
from export.onnx_target import load_check_images, onnx_bytes, write_onnx_artifacts
from lorsp.data import dataset_paths
from lorsp.plumbing.publish import claim_output


def export_all(checkpoint: str | Path, out: str | Path, *, precisions: Sequence[str] = ("fp32",),
               providers: Sequence[str] = ("cpu",), samples: int = 64, force: bool = False,
               dataset: str | None = None, finish: Finish | None = None) -> dict[str, Any]:
    """Write the Loihi and ONNX artifacts of ``checkpoint`` to ``out`` under one manifest; returns it."""
    providers = resolve_providers(providers)
    with claim_output(out, force, sources=[checkpoint]) as claim:
        source = read_source(checkpoint, generator_for="all")
        claim.require_space(onnx_bytes(source.model, precisions))
        claim.add_inputs(dataset_paths(check_dataset(source.config, dataset), source.config.get("data_root")))
        images = load_check_images(source.config, dataset, samples, source.state["classes"])
        sections = [functools.partial(write_loihi_artifacts, source.model, images=images.test,
                                      dataset=images.dataset),
                    functools.partial(write_onnx_artifacts, source.model, images=images, precisions=precisions,
                                      providers=providers)]
        return write_export(claim, "all", source, sections, finish)
