"""``--target loihi``: a LoRSP checkpoint -> the bundle of :mod:`hw_sim.bundle`.

Steps, all in ``DIR.partial`` (renamed to ``DIR`` at the end; removed on any error):

1. read the checkpoint (``weights_only``) and refuse prompts without a spiking generator;
2. export the generator to NIR and check it (:mod:`export.nir`) on the input encodings
   of the first ``N`` test images of the model's dataset;
3. read the NIR file into the chip's description, convert it to Loihi integers
   (:mod:`hw_sim.fixed_point`) and write the netx file (:mod:`export.netx`);
4. write ``host.safetensors`` and ``manifest.json``;
5. unless told not to, open the bundle as ``lorsp-hwsim`` would, simulate it in float and
   fixed point and write the report into ``DIR/hw_sim``; the manifest then lists it too.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import nir
import torch

from export.bundle_writer import Finish, read_source, write_export
from export.host import write_host
from export.netx import write_netx
from export.nir import check_description, check_nodes, check_round_trip, export_generator
from hw_sim.backends import MODES
from hw_sim.bundle import HOST_FILE, NETX_FILE, NIR_FILE, REPORT_DIR, open_bundle
from hw_sim.fixed_point import quantise
from hw_sim.nir_import import load_network
from hw_sim.report import write_report
from hw_sim.simulate import load_test_images, simulate
from lorsp.encoding import encode
from lorsp.fileio import check_output_dir
from lorsp.model import PromptedClassifier


def export_loihi(checkpoint: str | Path, out: str | Path, *, samples: int = 64, run_simulation: bool = True,
                 force: bool = False, dataset: str | None = None, timeout: float = 600.0,
                 progress: bool = True) -> dict[str, Any]:
    """Write the Loihi bundle of ``checkpoint`` to ``out``; returns the manifest."""
    out = check_output_dir(out, force)
    source = read_source(checkpoint, generator_for="loihi")
    config = source.config
    dataset = dataset or config["dataset"]
    x, _ = load_test_images(dataset, config["image_size"], samples, config.get("data_root"))
    section = functools.partial(write_loihi_artifacts, source.model, images=x, dataset=dataset)
    finish = simulation_step(out, dataset=dataset, samples=samples, timeout=timeout,
                             progress=progress) if run_simulation else None
    return write_export(out, "loihi", source, [section], finish)


def write_loihi_artifacts(model: PromptedClassifier, stage: Path, *, images: torch.Tensor,
                          dataset: str) -> dict[str, Any]:
    """Steps 2-4 for a LoRSP ``model``: NIR, netx and host files in ``stage``, checked on ``images``.

    Returns the manifest section (network, fixed point, checks, what runs where).
    """
    generator, prompt = model.spiking_generator, model.prompt
    spikes_in = encode(images, prompt.pool, prompt.time_steps)
    graph = export_generator(generator, spikes_in.shape[-1])
    nir.write(stage / NIR_FILE, graph)
    checks = {"nodes": check_nodes(generator, graph),
              "round_trip": {"dataset": dataset, **check_round_trip(stage / NIR_FILE, generator, spikes_in)}}
    network = load_network(stage / NIR_FILE)
    checks["description"] = check_description(generator, network)
    fixed = quantise(network)
    write_netx(network, fixed, stage / NETX_FILE)
    write_host(model, fixed, stage / HOST_FILE)
    return {
        "network": network.summary(),
        "fixed_point": [fx.summary(layer) for fx, layer in zip(fixed, network.layers)],
        "checks": checks,
        "on_chip": "the spiking generator (prompt_generator.nir / .net)",
        "on_host": "input encoding, gate rates -> low-rank prompt, backbone and head (host.safetensors)",
    }


def simulation_step(out: Path, *, dataset: str, samples: int, timeout: float,
                    progress: bool) -> Finish:
    """Step 5: simulate the staged bundle as ``lorsp-hwsim`` would, report into ``DIR/hw_sim``; its manifest field."""
    def run(stage: Path) -> dict[str, Any]:
        report = simulate(open_bundle(stage), dataset=dataset, samples=samples, modes=MODES,
                          timeout=timeout, progress=progress)
        report["bundle"]["path"] = str(out)
        write_report(report, stage / REPORT_DIR)
        return {"simulation": headline(report)}

    return run


def headline(report: dict) -> dict[str, Any]:
    """The figures of a simulation report worth a line in the manifest."""
    out: dict[str, Any] = {"report": f"{REPORT_DIR}/report.html", "samples": report["samples"],
                           "dataset": report["dataset"], "backend": report["backend"]}
    for mode, run in report["runs"].items():
        f = run["fidelity"]
        out[mode] = {"spike_agreement": f["spikes"]["overall"], "accuracy_chip": f["accuracy_chip"],
                     "accuracy_pytorch": f["accuracy_pytorch"], "prompt_rel_l2_diff": f["prompt_rel_l2_diff"],
                     "energy_nj_per_image": {e["table"]: e["total_nj"] for e in run["energy"]}}
    return out
