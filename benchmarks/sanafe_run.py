"""A :class:`~benchmarks.sanafe_graph.LoihiGraph` on SANA-FE's bundled Loihi: build, run every sample, read back.

The only module of the cross-check that imports ``sanafe`` (PyPI, GPL-3.0: a benchmark and test
dependency, never imported by lorsp's packages). :func:`run_sanafe` builds the network once through
SANA-FE's Python API (``Network.create_neuron_group``, ``connect_neurons_sparse``; groups placed
1,024 neurons to a core, the input on ``loihi_inputs`` somas) and runs each sample on one
``SpikingChip`` (``sanafe.load_loihi()``, built once, reset and loaded per sample).

Each group runs lorsp's ``T`` steps from SANA-FE's step ``depth`` (the pipeline's fill: before it,
no spike can have reached the group). With ``aligned`` (the default) its bias is switched on at
that step and, after its ``T`` steps, its bias is switched off and its threshold raised so that it
fires no more (``MappedNeuron.set_attributes`` between ``sim`` calls, which keep their state). So a
bias acts exactly as in lorsp, and nothing fires outside lorsp's window. Without ``aligned`` the
biases act from step 0, as a plain mapping would give them: the pipeline-filling steps then
integrate the bias alone, which lorsp has no counterpart for.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks.sanafe_graph import INPUT, LoihiGraph

CORE_NEURONS = 1024  # loihi.yaml: max_neurons_supported per core, and 1024 input somas per core
LOIHI_CORES = 128
SILENT_THRESHOLD = 2.0 ** 60
COUNTS = ("synapse_events", "fired", "packets", "updated", "hops")
ENERGY = ("total", "synapse", "dendrite", "soma", "network")


def placement(graph: LoihiGraph, cores: int = LOIHI_CORES) -> dict[str, np.ndarray]:
    """Each neuron's core, per group (the input first): groups in order, 1,024 neurons to a core, none shared."""
    where, next_core = {}, 0
    for name, size in [(INPUT, graph.input_size), *[(g.name, g.size) for g in graph.groups]]:
        where[name] = next_core + np.arange(size) // CORE_NEURONS
        next_core += -(-size // CORE_NEURONS)
    if next_core > cores:
        raise ValueError(f"the network needs {next_core} cores, more than SANA-FE's Loihi's {cores}")
    return where


def packets_per_spike(graph: LoihiGraph) -> dict[str, np.ndarray]:
    """Per neuron of each group (and the input): the cores its connections reach, one packet each per spike."""
    where = placement(graph)
    reach: dict[str, list[np.ndarray]] = {name: [] for name in where}
    for c in graph.connections:
        reach[c.source].append(np.stack([c.pre, where[c.target][c.post]], axis=1))
    out = {}
    for name, pairs in reach.items():
        count = np.zeros(len(where[name]))
        if pairs:
            unique = np.unique(np.concatenate(pairs), axis=0)
            count = np.bincount(unique[:, 0], minlength=len(where[name])).astype(np.float64)
        out[name] = count
    return out


def build_network(graph: LoihiGraph, aligned: bool = True):
    """``(arch, net, input group, SANA-FE group names)``: the graph as a SANA-FE network on its Loihi."""
    import sanafe

    arch = sanafe.load_loihi()
    cores = [c for tile in arch.tiles for c in tile.cores]
    where = placement(graph, len(cores))
    net = sanafe.Network()

    def place(group, name: str) -> None:
        for i, neuron in enumerate(group.neurons):
            neuron.map_to_core(cores[int(where[name][i])])

    inputs = net.create_neuron_group(INPUT, graph.input_size)
    for i, neuron in enumerate(inputs.neurons):
        neuron.set_attributes(soma_hw_name=f"loihi_inputs[{i % CORE_NEURONS}]")
    place(inputs, INPUT)
    made = {INPUT: inputs}
    names = {}
    for k, g in enumerate(graph.groups):
        names[g.name] = f"g{k}"
        group = net.create_neuron_group(names[g.name], g.size, soma_hw_name="loihi_lif",
                                        default_synapse_hw_name="loihi_dense_synapse",
                                        default_dendrite_hw_name="loihi_dendrites", log_spikes=True)
        for i, neuron in enumerate(group.neurons):
            neuron.set_attributes(model_attributes={
                "threshold": float(g.threshold[i]), "bias": 0.0 if aligned else float(g.bias[i]),
                "leak_decay": float(g.leak_decay[i]), "input_decay": 0.0, "reset": 0.0, "reset_mode": "hard"})
        place(group, g.name)
        made[g.name] = group
    for c in graph.connections:
        made[c.source].connect_neurons_sparse(made[c.target], {"w": [float(w) for w in c.weight]},
                                              list(zip(c.pre.tolist(), c.post.tolist())))
    return arch, net, inputs, names


def _schedule(graph: LoihiGraph, T: int) -> dict[int, list[tuple[str, str]]]:
    """SANA-FE step -> [(group, "on" | "off")]: bias on at its depth, silenced after its T steps."""
    events: dict[int, list[tuple[str, str]]] = {}
    for g in graph.groups:
        if np.any(g.bias != 0):
            events.setdefault(g.depth, []).append((g.name, "on"))
        if T + g.depth < T + graph.depth:
            events.setdefault(T + g.depth, []).append((g.name, "off"))
    return events


def run_sanafe(graph: LoihiGraph, x: np.ndarray, aligned: bool = True) -> dict:
    """Every sample of binary ``x`` ``(T, N, D)``: each group's spikes on lorsp's steps, counts, energy (J)."""
    import sanafe

    T, N, D = x.shape
    steps = T + graph.depth
    arch, net, inputs, names = build_network(graph, aligned)
    back = {v: k for k, v in names.items()}
    depth = {g.name: g.depth for g in graph.groups}
    spikes = {g.name: np.zeros((T, N, g.size), dtype=np.uint8) for g in graph.groups}
    late = 0
    per_sample = {k: np.zeros(N) for k in COUNTS}
    energy = {k: np.zeros(N) for k in ENERGY}
    events = _schedule(graph, T) if aligned else {}
    cuts = sorted({0, steps, *[t for t in events if 0 < t < steps]})
    start = time.perf_counter()
    chip = sanafe.SpikingChip(arch)  # built once (about 1.4 s for loihi.yaml's 128 cores); loaded per sample
    for s in range(N):
        for i, neuron in enumerate(inputs.neurons):
            neuron.set_attributes(model_attributes={"spikes": [bool(v) for v in x[:, s, i]] + [False] * graph.depth})
        chip.reset()
        chip.load(net)
        trace, perf, parts, packets = [], {}, dict.fromkeys(ENERGY, 0.0), 0
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            _apply(chip, graph, names, events.get(lo, []))
            result = chip.sim(hi - lo, processing_threads=1, spike_trace=True, perf_trace=True)
            trace += result["spike_trace"]
            for key, values in result["perf_trace"].items():
                perf.setdefault(key, []).extend(values)
            for key in ENERGY:
                parts[key] += result["energy"][key]
            packets += result["packets_sent"]
        for t, fired in enumerate(trace):
            for address in fired:
                group, _, offset = str(address).rpartition(".")
                if group == INPUT:
                    continue
                name = back[group]
                t_in = t - depth[name]
                if 0 <= t_in < T:
                    spikes[name][t_in, s, int(offset)] = 1
                else:
                    late += 1
        per_sample["synapse_events"][s] = sum(perf["spikes"])
        per_sample["fired"][s] = sum(perf["fired"]) - int(x[:, s].sum())  # less the input neurons' spikes
        per_sample["packets"][s] = packets
        per_sample["updated"][s] = sum(perf["updated"])
        per_sample["hops"][s] = sum(perf["hops"])
        for key in ENERGY:
            energy[key][s] = parts[key]
    return {"spikes": spikes, "steps": steps, "spikes_outside_window": late, "per_sample": per_sample,
            "energy_j": energy, "seconds": time.perf_counter() - start}


def _apply(chip, graph: LoihiGraph, names: dict[str, str], changes: list[tuple[str, str]]) -> None:
    """Switch groups' biases on, or silence them, on the loaded chip."""
    groups = {g.name: g for g in graph.groups}
    mapped = chip.mapped_neuron_groups if changes else {}
    for name, what in changes:
        g, neurons = groups[name], mapped[names[name]]
        for i, neuron in enumerate(neurons):
            if what == "on":
                if g.bias[i]:
                    neuron.set_attributes(model_attributes={"bias": float(g.bias[i])})
            else:
                neuron.set_attributes(model_attributes={"bias": 0.0, "threshold": SILENT_THRESHOLD})


def conv2d_edges(weight: np.ndarray, in_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(pre, post, w)`` list SANA-FE's own ``connect_neurons_conv2d`` makes of an integer kernel
    ``(out, in, kh, kw)`` on a ``(C, H, W)`` input (stride 1; it has no padding, dilation or groups),
    its flat kernel in the ``(kh, kw, in, out)`` order its source indexes."""
    import sanafe

    co, ci, kh, kw = weight.shape
    c, h, w = in_shape
    net = sanafe.Network()
    src = net.create_neuron_group("a", c * h * w)
    dst = net.create_neuron_group("b", co * (h - kh + 1) * (w - kw + 1))
    flat = np.transpose(weight, (2, 3, 1, 0)).reshape(-1)
    src.connect_neurons_conv2d(dst, {"w": [float(v) for v in flat]}, w, h, c, kw, kh, co, 1, 1)
    pre, post, values = [], [], []
    for i, neuron in enumerate(src.neurons):
        for edge in neuron.edges_out:
            pre.append(i)
            post.append(int(str(edge.post_neuron).rpartition(".")[2]))
            values.append(edge.synapse_attributes["w"])
    return np.asarray(pre), np.asarray(post), np.asarray(values)
