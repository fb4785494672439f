"""The chip side end to end: a bundle and test images in, a report (a plain dict) out.

For ``N`` test images: encode them on the host, run the generator in PyTorch (the
reference, :mod:`hw_sim.run`) and on the simulated chip in each mode, count operations,
price them with every energy table, and compare spikes, prompts and accuracy
(:mod:`hw_sim.fidelity`). :mod:`hw_sim.report` writes the dict out.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm import tqdm

from deploy.bundle import Bundle
from deploy.chip_kinds import PIXEL_GATES
from deploy.fixed_point import exactness, quantise
from deploy.network import SpikingNetwork
from hw_sim import energy
from hw_sim.backends import MODES, SimResult, get_backend
from hw_sim.fidelity import end_to_end, spike_agreement
from hw_sim.pixel_simulate import simulate_pixel
from hw_sim.run import bundle_fields, chip_weights, encoding_fields, provenance, rebuild, reference
from lorsp.data import load_split_images
from lorsp.plumbing.errors import LorspError

REPORT_FORMAT = "lorsp-hwsim-report"
RASTER_SAMPLE = 0


def simulate(bundle: Bundle, *, dataset: str | None = None, samples: int = 64, modes: Sequence[str] = MODES,
             backend: str = "fast", timeout: float = 600.0, progress: bool = True) -> dict:
    """Run ``bundle`` on the first ``samples`` test images in every mode; the report dict (a pixel bundle's:
    :func:`hw_sim.pixel_simulate.simulate_pixel`)."""
    if bundle.kind == PIXEL_GATES:
        return simulate_pixel(bundle, dataset=dataset, samples=samples, modes=modes, backend=backend,
                              timeout=timeout, progress=progress)
    for mode in modes:
        if mode not in MODES:
            raise LorspError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    run = get_backend(backend)
    config, network, host = bundle.config, bundle.network, bundle.host
    dataset = dataset or config["dataset"]
    model = rebuild(bundle)
    x, y = load_split_images(dataset, config["image_size"], samples, config.get("data_root"),
                             classes=bundle.manifest["classes"])
    spikes_in = model.prompt.encode(x)
    ref = reference(model, x)
    prompt_ref, ref_spikes, logits_ref = ref.prompt, ref.layer_spikes, ref.logits
    spikes_np = spikes_in.numpy().astype(np.uint8)
    names = [layer.name for layer in network.layers]
    ref_counts = energy.count_operations(*chip_weights(network, "float"), spikes_np, ref_spikes)
    report = {
        "format": REPORT_FORMAT, "format_version": 1,
        "bundle": bundle_fields(bundle),
        "dataset": dataset, "split": "test", "samples": int(x.shape[0]), "image_size": config["image_size"],
        "time_steps": host.time_steps, "encoding": encoding_fields(host), "backend": backend, "modes": list(modes),
        "network": network.summary(),
        "pytorch": {"accuracy": float((logits_ref.argmax(1) == y).float().mean()),
                    "activity": _activity(network, ref_counts, host.time_steps)},
        "runs": {},
        "energy_tables": {name: {"title": t.title, "source": t.source, "pj": t.pj, "note": t.note}
                          for name, t in ((n, energy.get_table(n)) for n in energy.list_tables())},
        "raster": {"sample": RASTER_SAMPLE, "label": int(y[RASTER_SAMPLE]),
                   "input": _events(spikes_np), "pytorch": [_events(s) for s in ref_spikes], "layer_names": names,
                   "sizes": [network.input_size, *network.sizes]},
    }
    for mode in modes:
        with tqdm(total=int(x.shape[0]), desc=f"{backend} {mode}", unit="img", disable=not progress,
                  leave=False) as bar:
            result = run(network, spikes_np, mode=mode, timeout=timeout,
                         progress=lambda done: bar.update(done - bar.n))
        report["runs"][mode] = _run_report(result, network, model, x, y, spikes_np, ref_spikes, prompt_ref,
                                           logits_ref, names)
        report["raster"][mode] = [_events(s) for s in result.layer_spikes]
    report["provenance"] = provenance()
    return report


def _run_report(result: SimResult, network: SpikingNetwork, model, x, y, spikes_np, ref_spikes, prompt_ref,
                logits_ref, names) -> dict:
    counts = energy.count_operations(*chip_weights(network, result.mode), spikes_np, result.layer_spikes)
    steady = result.details.get("first_chunk_seconds")
    chunk = result.details.get("chunk_samples", 0)
    rest = result.run_seconds - (steady or 0.0)
    out = {
        "fidelity": {"spikes": spike_agreement(result.layer_spikes, ref_spikes, names),
                     **end_to_end(model, x, y, result.layer_spikes[-1], prompt_ref, logits_ref)},
        "activity": _activity(network, counts, spikes_np.shape[0]),
        "energy": [energy.energy_per_image(counts, energy.get_table(n)) for n in energy.list_tables()],
        "left_out": energy.left_out(counts),
        "performance": {"seconds": result.seconds, "run_seconds": result.run_seconds, "steps": result.steps,
                        "images_per_s": result.images_per_s,
                        "steady_images_per_s": (result.samples - chunk) / rest if rest > 0 and
                        result.samples > chunk else None, **result.details},
    }
    if result.mode == "fixed":
        fixed = quantise(network)
        out["fixed_point"] = [f.summary(l) for f, l in zip(fixed, network.layers)]
        out["fixed_point_exact"] = exactness(network, fixed, spikes_np.shape[0])
    return out


def _activity(network: SpikingNetwork, counts: energy.OperationCounts, time_steps: int) -> dict:
    return {"input_spikes_per_image": counts.input_spikes, "spikes_per_image": counts.spikes,
            "firing_rate": [s / (time_steps * n) for s, n in zip(counts.spikes, network.sizes)],
            "synops_per_image": counts.synops, "synops_total_per_image": sum(counts.synops),
            "neuron_updates_per_image": counts.neuron_updates,
            "active_neuron_updates_per_image": counts.active_neuron_updates,
            "dense_macs_per_image": counts.dense_macs}


def _events(spikes: np.ndarray) -> list[list[int]]:
    """``[t, neuron]`` of every spike of the raster sample."""
    t, i = np.nonzero(spikes[:, RASTER_SAMPLE, :])
    return [[int(a), int(b)] for a, b in zip(t, i)]
