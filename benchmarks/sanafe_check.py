"""lorsp-hwsim against SANA-FE: the same network and input spikes on SANA-FE's Loihi and on lorsp's simulator.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sanafe_check.py -o docs/data/hwsim-nir/sanafe_check.json

SANA-FE (PyPI ``sanafe``, GPL-3.0; a benchmark and test dependency only, never imported by lorsp's
packages) runs a network with its bundled Loihi architecture (``sanafe.load_loihi()``, the
``arch/loihi.yaml`` whose energies lorsp's ``loihi-sanafe`` table copies). What it can express
here: feed-forward chains of dense synapses into ``LIF`` neurons (``Affine``/``Linear`` + ``LIF``
in NIR, as snnTorch's ``Linear`` + ``Leaky`` export them), binary input spikes.

The neuron model. SANA-FE's ``leaky_integrate_fire`` soma (``LoihiLifModel::update``) does, each
step, ``v = trunc64(v * leak_decay) + bias + (u * input_decay + input)`` then, if ``v >
threshold``, a hard reset to ``reset``; ``trunc64`` truncates ``v`` towards zero to a multiple of
1/64 (Loihi's 6-bit shift). That is Lava's bit-accurate LIF (and lorsp's fixed point,
``deploy/fixed_point.py``) in units of 2^6, so the network SANA-FE gets is lorsp's fixed-point
form of the graph: weight ``w`` (the 8-bit integer), ``threshold = vth``, ``bias = b_m``,
``leak_decay = (4096 - dv) / 4096``, ``input_decay = 0`` (a ``LIF`` has no current state),
``reset = 0``. Two differences are not in the neuron: SANA-FE delivers a spike to the next layer
one step later (as Lava does; lorsp has no delay per layer), so layer ``k``'s spikes are compared
shifted by ``k + 1`` steps and SANA-FE runs ``T + layers`` steps; and a ``CubaLIF`` is not the
same model (SANA-FE decays the current in float, Loihi truncates it), so it is refused.

Compared per sample: the spikes of every layer (SANA-FE against lorsp's fixed point, and against
lorsp's float graph interpreter), the synaptic operations (SANA-FE's synapse events, one per spike
and outgoing connection; only nonzero integer weights are connected, as lorsp counts them) and the
energy: SANA-FE's total and its parts against lorsp's report with the ``loihi-sanafe`` table. The
parts count differently (docs/hwsim-nir.md): SANA-FE updates a neuron whose potential is nonzero
as well as one that receives input, sends input spikes over the mesh (111 pJ a packet, lorsp
leaves input I/O out), sends a packet per spike and destination core, adds hop energy, and runs
``layers`` extra steps of neuron access (51.2 pJ per neuron per step).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import nir
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.fixed_point import DECAY_UNITY, quantise  # noqa: E402
from deploy.nir_graph import flat_graph  # noqa: E402
from hw_sim.backends import get_backend  # noqa: E402
from hw_sim.graph.fixed import chain_network  # noqa: E402
from hw_sim.graph.runner import compile_graph  # noqa: E402
from hw_sim.graph.simulate import simulate_compiled  # noqa: E402

CORE_NEURONS = 1024  # loihi.yaml: max_neurons_supported per core, and 1024 input somas per core
PJ = 1e12


def snntorch_chain(sizes: list[int], seed: int, beta: float = 0.9, gain: float = 3.0, bias: bool = False):
    """A randomly initialised snnTorch ``Linear -> Leaky`` chain (NIR's reset), weights scaled so every layer spikes."""
    import snntorch as snn
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        fc = nn.Linear(a, b, bias=bias)
        with torch.no_grad():
            fc.weight.mul_(gain)
        layers += [fc, snn.Leaky(beta=torch.full((b,), beta), threshold=torch.ones(b), init_hidden=True,
                                 reset_mechanism="zero", reset_delay=False, output=i == len(sizes) - 2)]
    return nn.Sequential(*layers)


def export_chain(path: Path, sizes: list[int], seed: int) -> Path:
    import torch
    from snntorch.export_nir import export_to_nir

    nir.write(path, export_to_nir(snntorch_chain(sizes, seed), torch.zeros(1, sizes[0]), ignore_dims=[0]))
    return path


def sanafe_network(fixed, input_size: int):
    """lorsp's fixed-point layers as a SANA-FE network on its Loihi architecture; the input group and arch."""
    import sanafe

    arch = sanafe.load_loihi()
    cores = [c for tile in arch.tiles for c in tile.cores]
    net = sanafe.Network()
    next_core = 0

    def place(group, size: int) -> None:
        nonlocal next_core
        neurons = group.neurons
        for i in range(size):
            neurons[i].map_to_core(cores[next_core + i // CORE_NEURONS])
        next_core += -(-size // CORE_NEURONS)

    inputs = net.create_neuron_group("input", input_size)
    for i, neuron in enumerate(inputs.neurons):
        neuron.set_attributes(soma_hw_name=f"loihi_inputs[{i % CORE_NEURONS}]")
    place(inputs, input_size)
    previous = inputs
    groups = []
    for k, layer in enumerate(fixed):
        if np.any(layer.du != DECAY_UNITY - 1):
            raise ValueError(f"layer {layer.name}: a current-based (CubaLIF) neuron; SANA-FE decays the current "
                             "in float and Loihi truncates it, so it is not the same model")
        n = layer.weight.shape[0]
        group = net.create_neuron_group(f"layer{k}", n, soma_hw_name="loihi_lif",
                                        default_synapse_hw_name="loihi_dense_synapse",
                                        default_dendrite_hw_name="loihi_dendrites", log_spikes=True)
        for i, neuron in enumerate(group.neurons):
            neuron.set_attributes(model_attributes={
                "threshold": float(layer.vth[i]), "bias": float(layer.bias_mant[i]),
                "leak_decay": float(DECAY_UNITY - layer.dv[i]) / DECAY_UNITY, "input_decay": 0.0,
                "reset": 0.0, "reset_mode": "hard"})
        place(group, n)
        dst, src = np.nonzero(layer.weight)  # only nonzero weights are synapses (lorsp counts those)
        previous.connect_neurons_sparse(group, {"w": [float(w) for w in layer.weight[dst, src]]},
                                        list(zip(src.tolist(), dst.tolist())))
        groups.append(group)
        previous = group
    return arch, net, inputs


def run_sanafe(fixed, x: np.ndarray) -> dict:
    """Every sample of ``x`` ``(T, N, D)`` on SANA-FE: spikes per layer aligned to the input steps, counts, energy."""
    import sanafe

    T, N, D = x.shape
    L = len(fixed)
    steps = T + L
    arch, net, inputs = sanafe_network(fixed, D)
    spikes = [np.zeros((T, N, layer.weight.shape[0]), dtype=np.uint8) for layer in fixed]
    late = 0
    per_sample = {k: np.zeros(N) for k in ("synapse_events", "fired", "packets", "updated", "hops")}
    energy = {k: np.zeros(N) for k in ("total", "synapse", "dendrite", "soma", "network")}
    start = time.perf_counter()
    chip = sanafe.SpikingChip(arch)  # built once (about 1.4 s for loihi.yaml's 128 cores); loaded per sample
    for s in range(N):
        for i, neuron in enumerate(inputs.neurons):
            train = [bool(v) for v in x[:, s, i]] + [False] * L
            neuron.set_attributes(model_attributes={"spikes": train})
        chip.reset()
        chip.load(net)
        result = chip.sim(steps, processing_threads=1, spike_trace=True, perf_trace=True)
        for t, fired in enumerate(result["spike_trace"]):
            for address in fired:
                name, _, offset = str(address).rpartition(".")
                if not name.startswith("layer"):
                    continue
                k = int(name[5:])
                t_in = t - (k + 1)  # one step of delay per connection
                if 0 <= t_in < T:
                    spikes[k][t_in, s, int(offset)] = 1
                else:
                    late += 1
        perf = result["perf_trace"]
        per_sample["synapse_events"][s] = sum(perf["spikes"])
        per_sample["fired"][s] = sum(perf["fired"]) - int(x[:, s].sum())  # less the input neurons' spikes
        per_sample["packets"][s] = result["packets_sent"]
        per_sample["updated"][s] = sum(perf["updated"])
        per_sample["hops"][s] = sum(perf["hops"])
        for key in energy:
            energy[key][s] = result["energy"][key]
    return {"spikes": spikes, "steps": steps, "spikes_outside_window": late, "per_sample": per_sample,
            "energy_j": energy, "seconds": time.perf_counter() - start}


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    return [float((x.astype(np.uint8) == y.astype(np.uint8)).mean()) for x, y in zip(a, b)]


def synops_on(fixed, x: np.ndarray, spikes: list[np.ndarray]) -> np.ndarray:
    """Per sample: pairs of a spike and a nonzero integer weight, every layer (lorsp's rule on these spikes)."""
    total = np.zeros(x.shape[1])
    inputs = [x] + spikes[:-1]
    for layer, s in zip(fixed, inputs):
        fan_out = (layer.weight != 0).sum(0).astype(np.float64)
        total += (s.astype(np.float64) * fan_out).sum(axis=(0, 2))
    return total


def compare(path: Path, x: np.ndarray) -> dict:
    """The whole comparison for the NIR chain at ``path`` and binary input ``x`` ``(T, N, D)``."""
    compiled = compile_graph(flat_graph(nir.read(path)), dt=1e-4)
    network = chain_network(compiled, x)
    fixed = quantise(network)
    T, N = x.shape[:2]
    flat = x.reshape(T, N, -1).astype(np.uint8)
    lorsp_fixed = get_backend("fast")(network, flat, mode="fixed", timeout=600).layer_spikes
    sim = simulate_compiled(compiled, x, path=path, input_spec="benchmark", dt_origin="1e-4 (snnTorch)")
    report = sim.report
    names = [layer.name for layer in network.layers]
    float_spikes = _float_layer_spikes(compiled, x, names)
    sf = run_sanafe(fixed, flat)

    lorsp_synops_fixed = synops_on(fixed, flat, lorsp_fixed)
    sanafe_synops = sf["per_sample"]["synapse_events"]
    table = next(e for e in report["energy"] if e.get("table") == "loihi-sanafe")
    neurons = sum(layer.weight.shape[0] for layer in fixed)
    mean = lambda a: float(np.mean(a))  # noqa: E731
    return {
        "network": {"layers": [{"name": l.name, "in": int(l.weight.shape[1]), "out": int(l.weight.shape[0]),
                                "synapses": int(np.count_nonzero(l.weight)), "vth": sorted({int(v) for v in l.vth}),
                                "dv": sorted({int(v) for v in l.dv})} for l in fixed],
                    "neurons": neurons},
        "input": {"steps": T, "samples": N, "spikes_per_sample": float(flat.sum() / N)},
        "sanafe_steps": sf["steps"],
        "spikes": {
            "layers": names,
            "sanafe_vs_lorsp_fixed_agreement": agreement(sf["spikes"], lorsp_fixed),
            "sanafe_equals_lorsp_fixed": all(np.array_equal(a, b) for a, b in zip(sf["spikes"], lorsp_fixed)),
            "sanafe_vs_lorsp_float_agreement": agreement(sf["spikes"], float_spikes),
            "lorsp_fixed_vs_float_agreement": agreement(lorsp_fixed, float_spikes),
            "spikes_outside_window": sf["spikes_outside_window"],
            "per_sample": {"sanafe": mean(sf["per_sample"]["fired"]),
                           "lorsp_fixed": mean(sum(s.reshape(T, N, -1).sum(axis=(0, 2)) for s in lorsp_fixed)),
                           "lorsp_float_report": report["activity"]["spike"]},
        },
        "synops_per_sample": {
            "sanafe": mean(sanafe_synops),
            "lorsp_rule_on_lorsp_fixed_spikes": mean(lorsp_synops_fixed),
            "equal_every_sample": bool(np.array_equal(sanafe_synops, lorsp_synops_fixed)),
            "lorsp_float_report": report["activity"]["synop"],
        },
        "energy_per_sample_pj": {
            "sanafe_total": mean(sf["energy_j"]["total"]) * PJ,
            "sanafe_parts": {k: mean(v) * PJ for k, v in sf["energy_j"].items() if k != "total"},
            "sanafe_synapse_over_synops": mean(sf["energy_j"]["synapse"]) * PJ / mean(sanafe_synops)
            if mean(sanafe_synops) else None,
            "lorsp_report_loihi_sanafe": table["total_pj"],
            "lorsp_report_lines_pj": {line["operation"]: line["pj"] for line in table["lines"]},
            "sanafe_over_lorsp": mean(sf["energy_j"]["total"]) * PJ / table["total_pj"],
            "sanafe_counts": {k: mean(v) for k, v in sf["per_sample"].items()},
            "reconciliation": reconcile(sf, report, neurons, T, flat),
            "lorsp_counts": report["activity"],
        },
        "seconds": {"sanafe": sf["seconds"], "lorsp_float": report["runs"]["float"]["performance"]["seconds"]},
    }


def reconcile(sf: dict, report: dict, neurons: int, T: int, x: np.ndarray) -> dict:
    """SANA-FE's energy parts rebuilt from its own counts with loihi.yaml's figures, next to lorsp's counts.

    Soma: 51.2 pJ access per LIF neuron per step (``steps`` = T + layers there, T in lorsp), 21.6 pJ
    per update, 69.3 pJ per spike; network: 111 pJ per packet plus hops (3.0-4.2 pJ each).
    """
    mean = lambda a: float(np.mean(a))  # noqa: E731
    access, update, spike_out, message = 51.2, 21.6, 69.3, 111.0
    soma = mean(sf["energy_j"]["soma"]) * PJ
    fired = mean(sf["per_sample"]["fired"])
    lif_updates = (soma - access * neurons * sf["steps"] - spike_out * fired) / update
    act = report["activity"]
    return {
        "sanafe_lif_updates_from_soma_energy": lif_updates,
        "sanafe_updated_less_input_spikes": mean(sf["per_sample"]["updated"]) - float(x.sum() / x.shape[1]),
        "lorsp_active_updates": act["neuron_update_active"],
        "access_pj": {"sanafe": access * neurons * sf["steps"], "lorsp": access * neurons * T},
        "sanafe_packets": mean(sf["per_sample"]["packets"]),
        "lorsp_packets_plus_input_spikes": act["spike_packet"] + float(x.sum() / x.shape[1]),
        "network_pj_less_packets": mean(sf["energy_j"]["network"]) * PJ - message * mean(sf["per_sample"]["packets"]),
    }


def _float_layer_spikes(compiled, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    from hw_sim.graph.runner import run_graph

    T, N = x.shape[:2]
    run = run_graph(compiled, x, record=names)
    return [run.outputs[n].reshape(T, N, -1).astype(np.uint8) for n in names]


def provenance() -> dict:
    from importlib.metadata import version

    return {"python": platform.python_version(), "machine": platform.machine(),
            **{p: version(p) for p in ("sanafe", "torch", "numpy", "snntorch", "nir")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,64,32,10", help="the snnTorch chain's layer sizes (input first)")
    parser.add_argument("--nir", type=Path, help="a NIR chain of Affine/Linear + LIF instead of the snnTorch chain")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.nir is None:
            sizes = [int(s) for s in args.sizes.split(",")]
            path = export_chain(Path(tmp) / "chain.nir", sizes, args.seed)
            source = f"snnTorch Linear+Leaky chain {sizes}, seed {args.seed}, exported with export_to_nir"
        else:
            path, source = args.nir, str(args.nir)
        graph = flat_graph(nir.read(path))
        shape = graph.input_shape
        rng = np.random.default_rng(args.seed)
        x = (rng.random((args.steps, args.samples, *shape)) < args.rate).astype(np.float32)
        result = {"command": "benchmarks/sanafe_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  "graph": source, "input_rate": args.rate, **compare(path, x), "provenance": provenance()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
