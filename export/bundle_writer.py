"""One export directory from one checkpoint: sections of artifacts, one manifest, published whole.

    source = read_source("runs/x/model.pt")
    with claim_output(out, force, sources=[source.checkpoint]) as claim:
        manifest = write_export(claim, "all", source, [loihi_section, onnx_section], finish=simulation)

A *section* writes its files into the staging directory and returns its manifest fields;
``finish`` runs once the manifest of every section exists (a simulation opens the staged
bundle as a reader would) and returns more fields, after which the manifest is written
again. The output is claimed (checked and locked) before any work and staged under a
per-process name until the end (:mod:`lorsp.plumbing.publish`). Every bundle gets the spec
(:mod:`deploy.spec`): in the manifest under ``spec`` and as ``README.md``; a bundle the reference
runner can run (a spiking generator and an ONNX backbone) also gets a copy of it, ``run_bundle.py``.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from deploy.chip_kinds import CHAIN, PIXEL_GATES, kind_of_manifest
from deploy.manifest import write_manifest
from deploy.pixel_spec import pixel_bundle_spec
from deploy.spec import README_FILE, RUNNER_SOURCE, bundle_spec
from deploy.spec_readme import render_readme
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import atomic_write, file_sha256
from lorsp.model import PromptedClassifier, model_from_state, read_checkpoint
from lorsp.prompts import chip_prompts
from lorsp.plumbing.provenance import git_commit, machine, versions
from lorsp.plumbing.publish import OutputClaim

Section = Callable[[Path], dict[str, Any]]
"""Writes files into the staging directory; returns the manifest fields that describe them."""
Finish = Callable[[Path], dict[str, Any]]
"""Runs on the staged directory with its manifest written; returns fields to add."""


@dataclass(frozen=True)
class Source:
    """A checkpoint read once: its path, its plain state and the model built from it."""

    checkpoint: Path
    state: dict[str, Any]
    model: PromptedClassifier

    @property
    def config(self) -> dict[str, Any]:
        return self.state["config"]

    def fields(self) -> dict[str, Any]:
        """The manifest fields that say where the export came from."""
        return {"source_checkpoint": {"path": str(self.checkpoint), "sha256": file_sha256(self.checkpoint)},
                "config": self.config, "classes": self.state["classes"],
                "backbone_weights_sha256": self.state.get("backbone_weights_sha256")}


def read_source(checkpoint: str | Path, *, generator_for: str | None = None) -> Source:
    """Read ``checkpoint`` (``weights_only``) and build its model; LorspError if it is not a lorsp checkpoint.

    ``generator_for``: the name of a target that puts the spiking generator on a chip; a
    checkpoint without one (a prompt with no chip part, :func:`lorsp.prompts.chip_prompts`) is then refused
    before the model is built.
    """
    state = read_checkpoint(checkpoint)
    config = state["config"]
    if generator_for is not None and config.get("prompt") not in chip_prompts():
        raise LorspError(f"{checkpoint} is a {config.get('prompt')!r} checkpoint; --target {generator_for} needs "
                         f"one whose prompt has a spiking generator (--prompt {'|'.join(chip_prompts())})")
    model = model_from_state(state, source=str(checkpoint))
    if generator_for is not None and (why := model.prompt.chip_refusal()) is not None:
        raise LorspError(f"{checkpoint}: {why}")
    return Source(Path(checkpoint), state, model)


def check_dataset(config: dict[str, Any], given: str | None) -> str:
    """The dataset of the export's check images: ``given`` (``--dataset``), else the model's own."""
    dataset = given or config.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise LorspError("the checkpoint's config names no dataset: pass --dataset for the check images")
    return dataset


def provenance_fields() -> dict[str, Any]:
    """Versions, commit and machine of the export."""
    return {"versions": versions(), "git_commit": git_commit(), "machine": machine()}


SPECS = {CHAIN: bundle_spec, PIXEL_GATES: pixel_bundle_spec}
"""The spec builder per chip network kind (:mod:`deploy.chip_kinds`; an ONNX-only export is a ``chain`` here)."""


def write_spec(stage: Path, model: PromptedClassifier, fields: dict[str, Any]) -> dict[str, Any]:
    """The bundle spec of the staged files (:mod:`deploy.spec`), also written as ``README.md``, and the reference
    runner copied in where the spec names it; returns the spec."""
    spec = SPECS[kind_of_manifest(fields)](stage, model, fields)
    atomic_write(stage / README_FILE, lambda tmp: tmp.write_text(render_readme(spec)))
    runner = spec["bundle_files"]["runner"]["file"]
    if runner:
        atomic_write(stage / runner, lambda tmp: shutil.copyfile(RUNNER_SOURCE, tmp))
    return spec


def write_export(claim: OutputClaim, target: str, source: Source, sections: Sequence[Section],
                 finish: Finish | None = None) -> dict[str, Any]:
    """Write ``sections`` into the claimed output's staging directory with one manifest, run ``finish``,
    publish; returns the manifest."""
    with claim.staged() as stage:
        fields: dict[str, Any] = {"target": target, **source.fields()}
        for write in sections:
            fields.update(write(stage))
        fields["spec"] = write_spec(stage, source.model, fields)
        fields.update(provenance_fields())
        manifest = write_manifest(stage, fields)
        if finish is not None:
            fields.update(finish(stage))
            manifest = write_manifest(stage, fields)
    return manifest
