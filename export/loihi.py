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

import shutil
from pathlib import Path
from typing import Any

import nir

from export.host import write_host
from export.manifest import write_manifest
from export.netx import write_netx
from export.nir import check_description, check_nodes, check_round_trip, export_generator
from hw_sim.backends import MODES
from hw_sim.bundle import HOST_FILE, NETX_FILE, NIR_FILE, REPORT_DIR, open_bundle
from hw_sim.fixed_point import quantise
from hw_sim.nir_import import load_network
from hw_sim.report import write_report
from hw_sim.simulate import load_test_images, simulate
from lorsp.fileio import file_sha256
from lorsp.encoding import encode
from lorsp.errors import LorspError
from lorsp.fileio import check_output_dir, publish_dir, staging_dir
from lorsp.model import model_from_state, read_checkpoint
from lorsp.provenance import git_commit, machine, versions


def export_loihi(checkpoint: str | Path, out: str | Path, *, samples: int = 64, run_simulation: bool = True,
                 force: bool = False, dataset: str | None = None, timeout: float = 600.0,
                 progress: bool = True) -> dict[str, Any]:
    """Write the Loihi bundle of ``checkpoint`` to ``out``; returns the manifest."""
    out = check_output_dir(out, force)
    state = read_checkpoint(checkpoint)
    config = state["config"]
    if config.get("prompt") != "lorsp":
        raise LorspError(f"{checkpoint} is a {config.get('prompt')!r} checkpoint; --target loihi needs a LoRSP "
                         f"one (--prompt lorsp), the only prompt with a spiking generator")
    model = model_from_state(state, source=str(checkpoint))
    generator, prompt = model.spiking_generator, model.prompt
    dataset = dataset or config["dataset"]
    x, _ = load_test_images(dataset, config["image_size"], samples, config.get("data_root"))
    spikes_in = encode(x, prompt.pool, prompt.time_steps)

    stage = staging_dir(out)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        graph = export_generator(generator, spikes_in.shape[-1])
        nir.write(stage / NIR_FILE, graph)
        checks = {"nodes": check_nodes(generator, graph),
                  "round_trip": {"dataset": dataset, **check_round_trip(stage / NIR_FILE, generator, spikes_in)}}
        network = load_network(stage / NIR_FILE)
        checks["description"] = check_description(generator, network)
        fixed = quantise(network)
        write_netx(network, fixed, stage / NETX_FILE)
        write_host(model, fixed, stage / HOST_FILE)
        fields = {
            "target": "loihi",
            "source_checkpoint": {"path": str(checkpoint), "sha256": file_sha256(checkpoint)},
            "config": config, "classes": state["classes"],
            "backbone_weights_sha256": state.get("backbone_weights_sha256"),
            "network": network.summary(),
            "fixed_point": [fx.summary(layer) for fx, layer in zip(fixed, network.layers)],
            "checks": checks,
            "on_chip": "the spiking generator (prompt_generator.nir / .net)",
            "on_host": "input encoding, gate rates -> low-rank prompt, backbone and head (host.safetensors)",
            "versions": versions(), "git_commit": git_commit(), "machine": machine(),
        }
        manifest = write_manifest(stage, fields)
        if run_simulation:
            report = simulate(open_bundle(stage), dataset=dataset, samples=samples, modes=MODES,
                              timeout=timeout, progress=progress)
            report["bundle"]["path"] = str(out)
            write_report(report, stage / REPORT_DIR)
            fields["simulation"] = headline(report)
            manifest = write_manifest(stage, fields)
        publish_dir(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return manifest


def headline(report: dict) -> dict[str, Any]:
    """The figures of a simulation report worth a line in the manifest."""
    out: dict[str, Any] = {"report": f"{REPORT_DIR}/report.html", "samples": report["samples"],
                           "dataset": report["dataset"]}
    for mode, run in report["runs"].items():
        f = run["fidelity"]
        out[mode] = {"spike_agreement": f["spikes"]["overall"], "accuracy_chip": f["accuracy_chip"],
                     "accuracy_pytorch": f["accuracy_pytorch"], "prompt_rel_l2_diff": f["prompt_rel_l2_diff"],
                     "energy_nj_per_image": {e["table"]: e["total_nj"] for e in run["energy"]}}
    return out
