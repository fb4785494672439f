"""Co-simulation of the deployment split on real images, stage by stage, against PyTorch.

    bundle = open_bundle("runs/x/deploy")                    # every sha256 checked first
    report = cosimulate(bundle, split="test", limit=256, backend="fast", mode="fixed", precision="fp32")

Each batch of images goes through the split as it would be deployed (docs/method.md):

1. host: the prompt's encoding (:class:`lorsp.encoding.Encoding`) -> binary input spikes ``(T, N, D)``;
2. chip: the spiking generator of ``prompt_generator.nir`` on a simulator backend
   (:mod:`hw_sim.backends`; a pixel bundle's gates on the NIR graph path, :mod:`hw_sim.cosim_chip`) -> gate spikes;
3. host: the prompt from the gate spikes (the prompt's own ``prompt_from_spikes``), added
   to the image;
4. accelerator: ``backbone.onnx`` (or its fp16 or int8 file) in onnxruntime -> logits.

Beside it, the PyTorch model rebuilt from the bundle (:func:`hw_sim.run.rebuild`)
classifies the same images. The report (a plain dict, written by :mod:`hw_sim.cosim_report`)
holds the agreement of the two predictions, both accuracies, the largest logit
difference, energy per image per stage (:mod:`hw_sim.stage_energy`) and the wall time per
image per stage, measured here.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnxruntime as ort
import torch
from tqdm import tqdm

from deploy.onnx_runtime import (NUMBER_FORMATS, PRECISIONS, check_onnx_contract, load_onnx_checked, make_session,
                                 run_logits)
from hw_sim import energy
from hw_sim.backends import MODES, default_backend, get_backend
from deploy.bundle import Bundle
from hw_sim.cosim_chip import ChipPart, ChipRun, chip_part
from hw_sim.fidelity import spike_agreement
from hw_sim.run import Reference, bundle_fields, encoding_fields, provenance, rebuild, reference
from hw_sim.cosim_images import describe, per_image_arrays
from lorsp.data.splits import load_split_images_indexed
from hw_sim.stage_energy import STAGES, WHERE, stage_energy
from lorsp.plumbing.errors import LorspError
from lorsp.model import PromptedClassifier
from lorsp.plumbing.provenance import machine

REPORT_FORMAT = "lorsp-cosim-report"
DEFAULT_CHIP_TABLE = "loihi-davies2018"
DEFAULT_BATCH = 64
PROVIDERS = ("cpu",)
ONNX_THREADS = 2
HOST_THREADS = 1


@contextmanager
def host_threads(threads: int = HOST_THREADS) -> Iterator[None]:
    """Run PyTorch on ``threads`` threads inside the block (the process's setting is restored after).

    The host's tensors are small, and on a shared CPU a 2-thread OpenMP region stalls
    whenever one of its threads is descheduled (docs/onnx.md): measured here, encode and
    prompt took 20 to 60 times longer on 2 threads than on 1. Set once per run, since
    changing it costs milliseconds.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def chip_tables() -> list[str]:
    """The energy tables that price a neuromorphic chip (they have a synop figure)."""
    return [name for name in energy.list_tables() if "synop" in energy.get_table(name).pj]


def backbone_file(bundle: Bundle, precision: str) -> Path:
    """The bundle's ONNX file of ``precision``, checked against the bundle (its contract, sizes, class count,
    finite weights) before anything runs; LorspError when the export did not write it or it does not fit."""
    if precision not in PRECISIONS:
        raise LorspError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    files = (bundle.manifest.get("onnx") or {}).get("files", {})
    name = files.get(precision)
    if name is None or name not in bundle.manifest["artifacts"]:
        have = ", ".join(p for p in files if files[p] in bundle.manifest["artifacts"]) or "none"
        raise LorspError(f"{bundle.root} holds no {precision} ONNX backbone (ONNX precisions in it: {have}); "
                         f"export one with lorsp-export --target all --precision {precision}")
    path = bundle.root / name
    check_onnx_contract(load_onnx_checked(path), bundle.config["image_size"], len(bundle.manifest["classes"]), path)
    return path


@dataclass(frozen=True)
class StageRun:
    """One batch through the split: logits, the chip's spikes and the wall time of every stage."""

    logits: np.ndarray
    prompted: torch.Tensor
    spikes_in: np.ndarray
    layer_spikes: list[np.ndarray]
    seconds: dict[str, float]
    prompt_entries: int
    chip: ChipRun


@dataclass(frozen=True)
class SplitPipeline:
    """The deployment split on this machine: host encode -> chip (simulator) -> host prompt -> ORT backbone."""

    model: PromptedClassifier
    chip: ChipPart
    session: ort.InferenceSession
    backend: str
    mode: str
    timeout: float

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> StageRun:
        prompt = self.model.prompt
        t0 = time.perf_counter()
        spikes_in = prompt.encode(x).numpy().astype(np.uint8)
        t1 = time.perf_counter()
        chip = self.chip.run(spikes_in)
        layer_spikes = chip[0]
        t2 = time.perf_counter()
        prompted, entries = prompt.add_from_spikes(x, torch.from_numpy(layer_spikes[-1]))
        t3 = time.perf_counter()
        logits = run_logits(self.session, prompted, batch_size=len(x), timeout=self.timeout)
        t4 = time.perf_counter()
        return StageRun(logits, prompted, spikes_in, layer_spikes,
                        dict(zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3))), entries, chip)


def open_pipeline(bundle: Bundle, *, precision: str = "fp32", backend: str | None = None, mode: str = "fixed",
                  timeout: float = 600.0) -> SplitPipeline:
    """The split of ``bundle`` with the ONNX file of ``precision`` and the generator on ``backend`` in ``mode``."""
    backend = backend or default_backend()
    get_backend(backend)
    if mode not in MODES:
        raise LorspError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    if not timeout > 0:
        raise LorspError(f"--timeout must be positive, got {timeout}")
    path = backbone_file(bundle, precision)
    model = rebuild(bundle)
    chip = chip_part(bundle, backend, mode, timeout)
    session = make_session(path, PROVIDERS, threads=ONNX_THREADS, spinning=False)
    return SplitPipeline(model, chip, session, backend, mode, timeout)


def cosimulate(bundle: Bundle, **options: Any) -> dict[str, Any]:
    """Run the first ``limit`` images of ``split`` through the split pipeline and PyTorch; the report dict.

    Options as :func:`cosimulate_images`, which also returns the per-image tensors.
    """
    return cosimulate_images(bundle, **options)[0]


def cosimulate_images(bundle: Bundle, *, dataset: str | None = None, split: str = "test", limit: int = 64,
                      backend: str | None = None, mode: str = "fixed", precision: str = "fp32",
                      timeout: float = 600.0, batch_size: int = DEFAULT_BATCH, chip_table: str = DEFAULT_CHIP_TABLE,
                      progress: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The report and the tensors of ``cosim_images.safetensors`` (:mod:`hw_sim.cosim_images`), described
    in the report under ``per_image``."""
    if limit < 1:
        raise LorspError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise LorspError(f"--batch-size must be at least 1, got {batch_size}")
    if chip_table not in chip_tables():
        raise LorspError(f"unknown chip energy table {chip_table!r}; choose one of: {', '.join(chip_tables())}")
    backbone_file(bundle, precision)
    config = bundle.config
    dataset = dataset or config["dataset"]
    x, y, indices = load_split_images_indexed(dataset, config["image_size"], limit, config.get("data_root"),
                                              split=split, classes=bundle.manifest["classes"])
    pipeline = open_pipeline(bundle, precision=precision, backend=backend, mode=mode, timeout=timeout)
    runs, refs, ref_seconds = [], [], 0.0
    with host_threads(), tqdm(total=len(x), desc=f"cosim {pipeline.backend} {mode} {precision}", unit="img",
                              disable=not progress) as bar:
        for batch in x.split(batch_size):
            runs.append(pipeline(batch))
            start = time.perf_counter()
            refs.append(reference(pipeline.model, batch))
            ref_seconds += time.perf_counter() - start
            bar.update(len(batch))
    report = _report(bundle, pipeline, runs, refs, ref_seconds, y, dataset=dataset, split=split, precision=precision,
                     batch_size=batch_size, chip_table=chip_table)
    arrays = per_image_arrays(indices=indices, labels=y.numpy(), logits=np.concatenate([r.logits for r in runs]),
                              logits_ref=np.concatenate([r.logits.numpy() for r in refs]),
                              gate_spikes=np.concatenate([r.layer_spikes[-1] for r in runs], axis=1),
                              prompted=[r.prompted for r in runs])
    report["per_image"] = describe(arrays, {"dataset": dataset, "split": split, "backend": pipeline.backend,
                                            "mode": pipeline.mode, "precision": precision})
    return report, arrays


def _report(bundle: Bundle, pipeline: SplitPipeline, runs: list[StageRun], refs: list[Reference],
            ref_seconds: float, y: torch.Tensor, *, dataset: str, split: str, precision: str, batch_size: int,
            chip_table: str) -> dict[str, Any]:
    logits = np.concatenate([r.logits for r in runs])
    logits_ref = np.concatenate([r.logits.numpy() for r in refs])
    spikes_in = np.concatenate([r.spikes_in for r in runs], axis=1)
    names = pipeline.chip.names
    layers = range(len(names))
    sim = [np.concatenate([r.layer_spikes[k] for r in runs], axis=1) for k in layers]
    ref = [np.concatenate([r.layer_spikes[k] for r in refs], axis=1) for k in layers]
    counts = pipeline.chip.count(spikes_in, sim, [r.chip for r in runs])
    labels = y.numpy()
    n = len(labels)
    equal = int(np.sum(logits.argmax(1) == logits_ref.argmax(1)))
    host, onnx = bundle.host, bundle.manifest["onnx"]
    seconds = {stage: sum(r.seconds[stage] for r in runs) for stage in STAGES}
    prompt_entries = sum(r.prompt_entries for r in runs) / n
    return {
        "format": REPORT_FORMAT, "format_version": 1,
        "bundle": {**bundle_fields(bundle), "artifacts_verified": len(bundle.manifest["artifacts"]),
                   "manifest_integrity": bundle.manifest["integrity"]["sha256"]},
        "dataset": dataset, "split": split, "samples": n, "image_size": bundle.config["image_size"],
        "time_steps": host.time_steps, "encoding": encoding_fields(host), "backend": pipeline.backend,
        "mode": pipeline.mode,
        "precision": precision, "onnx_file": onnx["files"][precision],
        "providers": pipeline.session.get_providers(), "batch_size": batch_size,
        "agreement": {"equal": equal, "samples": n, "share": equal / n},
        "accuracy": {"cosim": float(np.mean(logits.argmax(1) == labels)),
                     "pytorch": float(np.mean(logits_ref.argmax(1) == labels))},
        "max_abs_logit_diff": float(np.max(np.abs(logits - logits_ref))),
        "prompted_max_abs_diff": max(float((r.prompted - rf.prompted).abs().max()) for r, rf in zip(runs, refs)),
        "spikes": spike_agreement(sim, ref, names),
        "activity": {"input_spikes_per_image": counts.input_spikes, "spikes_per_image": counts.spikes,
                     "synops_per_image": counts.synops, "neuron_updates_per_image": counts.neuron_updates,
                     "dense_macs_per_image": counts.dense_macs,
                     "prompt_entries_per_image": prompt_entries},
        "energy": stage_energy(counts, image_size=bundle.config["image_size"], encoding=host.encoding,
                               gates=pipeline.chip.gates, prompt_entries=prompt_entries,
                               rank_products=rank_products(bundle.config, host.gate, prompt_entries),
                               backbone_macs=onnx["macs_per_image"], precision=NUMBER_FORMATS[precision],
                               chip_table=chip_table),
        "latency": _latency(seconds, ref_seconds, n, pipeline.backend),
        "provenance": provenance(),
    }


def rank_products(config: dict[str, Any], gate: str, prompt_entries: float) -> float:
    """Host multiply-adds per image to form the prompt's entries from the factors.

    Band gating: ``r`` per entry added (the sum of the open rank-1 terms at each open pixel); row/column
    gating: 0 (``B A`` is fixed, computed once).
    """
    return config["rank"] * prompt_entries if gate == "band" else 0


def _latency(seconds: dict[str, float], ref_seconds: float, n: int, backend: str) -> dict[str, Any]:
    total = sum(seconds.values())
    return {
        "stages": [{"stage": s, "where": WHERE[s], "seconds": seconds[s], "ms_per_image": 1e3 * seconds[s] / n,
                    "share": seconds[s] / total if total > 0 else 0.0} for s in STAGES],
        "pipeline_ms_per_image": 1e3 * total / n, "pipeline_images_per_s": n / total if total > 0 else None,
        "backbone_only_images_per_s": n / seconds["backbone"] if seconds["backbone"] > 0 else None,
        "pytorch_ms_per_image": 1e3 * ref_seconds / n,
        "note": f"wall time on this CPU ({machine()}), all stages in one process, PyTorch on {HOST_THREADS} "
                f"thread(s), onnxruntime on {ONNX_THREADS}; the generator's time is the {backend} simulator's on "
                f"this CPU, not Loihi's; the backbone's is onnxruntime's on this CPU, not an accelerator's",
    }
