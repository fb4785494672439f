"""``lorsp-hwsim DIR`` on a pixel bundle: the gates on the NIR graph path against the PyTorch model of the bundle.

For ``N`` test images: encode them on the host, run the model rebuilt from the bundle (the reference,
:mod:`hw_sim.run`) and the gates in each mode (:func:`hw_sim.pixel_chip.run_pixel_gates`: the graph
interpreter in float, its integer twin in fixed point), count the chip's operations and price them with
every energy table, and compare gate spikes, prompts and accuracy (:mod:`hw_sim.fidelity`), as the chain
report does. With ``backend="lava"`` Lava itself (lava-nc, :func:`hw_sim.graph.lava_check.lava_runs`) then runs
the same graph and input in every mode and is compared with the graph path spike for spike (block ``lava``);
the fidelity rows are the graph path's, which Lava's spikes equal where its block says ``exact``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm import tqdm

from deploy.bundle import Bundle
from deploy.chip_kinds import PIXEL_GATES
from deploy.pixel_bundle import PixelGateNetwork
from hw_sim import energy
from hw_sim.backends import MODES
from hw_sim.fidelity import end_to_end, spike_agreement
from hw_sim.graph.chip_fit import CHIPS, chip_fit, list_chips
from hw_sim.pixel_chip import compiled_gates, graph_input, run_pixel_gates
from hw_sim.run import bundle_fields, encoding_fields, provenance, rebuild, reference
from lorsp.data import load_split_images
from lorsp.plumbing.errors import LorspError

REPORT_FORMAT = "lorsp-hwsim-report"
PATH = ("the NIR graph path of lorsp-hwsim MODEL.nir: float, the graph interpreter (PyTorch float32); fixed, the "
        "general fixed-point path's integer twin (Loihi's bit-accurate LIF, 8-bit weights), whose integers are "
        "checked equal to the bundle's netx file first")


def simulate_pixel(bundle: Bundle, *, dataset: str | None = None, samples: int = 64, modes: Sequence[str] = MODES,
                   backend: str = "fast", timeout: float = 600.0, progress: bool = True) -> dict:
    """Run the pixel ``bundle``'s gates on the first ``samples`` test images in every mode; the report dict."""
    network: PixelGateNetwork = bundle.network
    for mode in modes:
        if mode not in MODES:
            raise LorspError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    config, host = bundle.config, bundle.host
    dataset = dataset or config["dataset"]
    model = rebuild(bundle)
    x, y = load_split_images(dataset, config["image_size"], samples, config.get("data_root"),
                             classes=bundle.manifest["classes"])
    spikes_np = model.prompt.encode(x).numpy().astype(np.uint8)
    ref = reference(model, x)
    ref_spikes = ref.layer_spikes[-1]
    report = {
        "format": REPORT_FORMAT, "format_version": 1, "chip_network": PIXEL_GATES,
        "bundle": bundle_fields(bundle), "dataset": dataset, "split": "test", "samples": int(x.shape[0]),
        "image_size": config["image_size"], "time_steps": host.time_steps, "encoding": encoding_fields(host),
        "backend": backend, "modes": list(modes), "path": PATH, "network": network.summary(),
        "pytorch": {"accuracy": float((ref.logits.argmax(1) == y).float().mean()),
                    "activity": {"input_spikes_per_image": float(spikes_np.sum()) / len(x),
                                 "spikes_per_image": [float(ref_spikes.sum()) / len(x)]}},
        "runs": {},
        "energy_tables": {name: {"title": t.title, "source": t.source, "pj": t.pj, "note": t.note}
                          for name, t in ((n, energy.get_table(n)) for n in energy.list_tables())},
    }
    for mode in modes:
        with tqdm(total=int(x.shape[0]), desc=f"graph {mode}", unit="img", disable=not progress, leave=False) as bar:
            run = run_pixel_gates(network, spikes_np, mode=mode, timeout=timeout,
                                  progress=lambda done: bar.update(done - bar.n))
        c = run.counts
        report["runs"][mode] = {
            "fidelity": {"spikes": spike_agreement([run.gate_spikes], [ref_spikes], ["gates"]),
                         **end_to_end(model, x, y, run.gate_spikes, ref.prompt, ref.logits)},
            "activity": {"input_spikes_per_image": c.input_spikes, "spikes_per_image": c.spikes,
                         "firing_rate": [c.spikes[0] / (host.time_steps * network.gates)],
                         "synops_per_image": c.synops, "synops_total_per_image": sum(c.synops),
                         "neuron_updates_per_image": c.neuron_updates,
                         "active_neuron_updates_per_image": c.active_neuron_updates, "dense_macs_per_image": c.dense_macs},
            "energy": [energy.energy_per_image(c, energy.get_table(n)) for n in energy.list_tables()],
            "left_out": energy.left_out(c),
            "performance": {"seconds": run.seconds, "run_seconds": run.seconds, "steps": int(spikes_np.shape[0]),
                            "images_per_s": len(x) / run.seconds if run.seconds > 0 else None},
        }
        if mode == "fixed":
            fixed_point, exact = network.fixed_point()
            report["runs"][mode]["fixed_point"], report["runs"][mode]["fixed_point_exact"] = fixed_point, exact
    compiled = compiled_gates(network, "float")
    report["chip_fit"] = {name: chip_fit(compiled, CHIPS.get(name)) for name in list_chips()}
    if backend == "lava":
        from hw_sim.graph.lava_check import lava_runs  # imports Lava on first use
        report["lava"] = lava_runs(compiled, graph_input(network, spikes_np), modes, timeout)
    report["provenance"] = provenance()
    return report
