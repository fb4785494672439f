"""lorsp-hwsim against SANA-FE: the same network and input spikes on SANA-FE's Loihi and on lorsp's simulator.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sanafe_check.py -o docs/data/hwsim-nir/sanafe_check.json
    ... --net conv --image 2,34,34 --naive -o docs/data/hwsim-nir/sanafe_check_conv.json
    ... --net recurrent --sizes 200,2048,10 --naive -o docs/data/hwsim-nir/sanafe_check_recurrent.json

SANA-FE (PyPI ``sanafe``, GPL-3.0; a benchmark and test dependency only, never imported by lorsp's
packages) runs a network with its bundled Loihi architecture (``sanafe.load_loihi()``, the
``arch/loihi.yaml`` whose energies lorsp's ``loihi-sanafe`` table copies).

The neuron model. SANA-FE's ``leaky_integrate_fire`` soma (``LoihiLifModel::update``) does, each
step, ``v = trunc64(v * leak_decay) + bias + (u * input_decay + input)`` then, if ``v >
threshold``, a hard reset to ``reset``; ``trunc64`` truncates ``v`` towards zero to a multiple of
1/64 (Loihi's 6-bit shift). That is Lava's bit-accurate LIF in units of 2^6, so SANA-FE gets
lorsp's fixed-point form of the graph (:func:`hw_sim.graph.fixed_graph.compile_fixed`, the general
path: dense, convolutional, pooled, recurrent), as groups and multiplied-out connection lists
(:mod:`benchmarks.sanafe_graph`), and its spikes are compared with lorsp's fixed-point spikes.
SANA-FE delivers a spike one step after it fires, on every connection; a group at depth ``d`` is
compared shifted by ``d`` steps, which is exact for feed-forward connections (depth ``d - 1`` to
``d``) and for recurrent ones (lorsp's recurrence is the previous step's spike, SANA-FE's one
step of delay is that same step). Biases are switched on at a group's step ``d`` and groups are
silenced after their ``T`` steps (:mod:`benchmarks.sanafe_run`); ``--naive`` also runs the plain
mapping (biases from step 0) and reports its agreement.

Compared per sample: the spikes of every group (SANA-FE against lorsp's fixed point, and against
lorsp's float graph interpreter), the synaptic operations (SANA-FE's synapse events, one per spike
and outgoing connection in the firing step; only nonzero integer weights are connected, as lorsp
counts them) and the energy: SANA-FE's total and its parts against lorsp's report with the
``loihi-sanafe`` table, reconciled from SANA-FE's own counts.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import nir
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.sanafe_graph import INPUT, LoihiGraph, loihi_groups  # noqa: E402
from benchmarks.sanafe_nets import export, export_chain, snntorch_chain, snntorch_conv, \
    snntorch_recurrent  # noqa: E402,F401
from benchmarks.sanafe_run import conv2d_edges, packets_per_spike, run_sanafe  # noqa: E402
from deploy.nir_graph import flat_graph  # noqa: E402
from hw_sim.graph.fixed_graph import compile_fixed  # noqa: E402
from hw_sim.graph.runner import CompiledGraph, compile_graph, run_graph  # noqa: E402
from hw_sim.graph.simulate import simulate_compiled  # noqa: E402

PJ = 1e12


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    """Per group: the share of (step, sample, neuron) where the two spike arrays agree."""
    return [float((x.astype(np.uint8) == y.astype(np.uint8)).mean()) for x, y in zip(a, b)]


def synops_on(graph: LoihiGraph, x: np.ndarray, spikes: dict[str, np.ndarray]) -> np.ndarray:
    """Per sample: every spike times its nonzero outgoing connections (SANA-FE counts a spike's synapse
    events in the step it fires, the last step's recurrent spikes included)."""
    total = np.zeros(x.shape[1])
    for c in graph.connections:
        source = x if c.source == INPUT else spikes[c.source]
        total += (source.astype(np.float64) * c.fan_out(graph.size_of(c.source))).sum(axis=(0, 2))
    return total


def packets_on(graph: LoihiGraph, x: np.ndarray, spikes: dict[str, np.ndarray]) -> np.ndarray:
    """Per sample: one packet per spike and core its connections reach (input spikes included)."""
    total = np.zeros(x.shape[1])
    for name, per_spike in packets_per_spike(graph).items():
        source = x if name == INPUT else spikes[name]
        total += (source.astype(np.float64) * per_spike).sum(axis=(0, 2))
    return total


def last_step_recurrent(graph: LoihiGraph, spikes: dict[str, np.ndarray]) -> float:
    """Per sample: synapse events of recurrent connections from spikes of the last step (lorsp's report
    never delivers them: their next step is past the run)."""
    total = 0.0
    for c in graph.connections:
        if c.recurrent:
            last = spikes[c.source][-1].astype(np.float64)
            total += float((last * c.fan_out(graph.size_of(c.source))).sum()) / last.shape[0]
    return total


def layer_spikes(compiled: CompiledGraph, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Every named node's output ``(T, N, neurons)`` as uint8."""
    T, N = x.shape[:2]
    run = run_graph(compiled, x, record=names)
    return {n: run.outputs[n].reshape(T, N, -1).astype(np.uint8) for n in names}


def conv2d_check(fixed: CompiledGraph, graph: LoihiGraph) -> list[dict]:
    """For each ``Conv2d`` SANA-FE's ``connect_neurons_conv2d`` could take (stride 1, no padding, dilation
    or groups, fed by a group or the input without a pool): whether its connection list, less its
    zero-weight edges, equals the multiplied-out one lorsp gives SANA-FE."""
    rows = []
    for c in graph.connections:
        node = fixed[c.node]
        if node.node.kind != "Conv2d":
            continue
        n = node.node.node
        shape = tuple(int(v) for v in fixed[c.via[0]].in_shape)
        plain = all(np.all(np.asarray(getattr(n, k)) == v) for k, v in
                    (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))) and len(c.via) == 1
        row = {"node": c.node, "padding": np.asarray(n.padding).tolist(), "stride": np.asarray(n.stride).tolist(),
               "expressible": bool(plain)}
        if plain:
            pre, post, w = conv2d_edges(_kernel(c, np.shape(n.weight), shape), shape)
            keep = w != 0
            ours = sorted(zip(c.pre.tolist(), c.post.tolist(), c.weight.tolist()))
            theirs = sorted(zip(pre[keep].tolist(), post[keep].tolist(), w[keep].astype(np.int64).tolist()))
            row.update({"edges": int(len(w)), "zero_weight_edges": int((~keep).sum()),
                        "nonzero_edges_equal_multiplied_out": ours == theirs})
        rows.append(row)
    return rows


def _kernel(c, kernel_shape: tuple[int, ...], in_shape: tuple[int, ...]) -> np.ndarray:
    """The integer kernel ``(out, in, kh, kw)`` of an unpadded stride-1 convolution, read back from its
    multiplied-out connection list (output ``(o, y, x)`` from input ``(i, y + ky, x + kx)``)."""
    co, ci, kh, kw = kernel_shape
    _, h, w = in_shape
    ho, wo = h - kh + 1, w - kw + 1
    o, rest = np.divmod(c.post, ho * wo)
    y, x = np.divmod(rest, wo)
    i, rest = np.divmod(c.pre, h * w)
    yi, xi = np.divmod(rest, w)
    kernel = np.zeros(kernel_shape, np.int64)
    kernel[o, i, yi - y, xi - x] = c.weight
    return kernel


def compare(path: Path, x: np.ndarray, naive: bool = False) -> dict:
    """The whole comparison for the NIR graph at ``path`` and binary input ``x`` ``(T, N, *input_shape)``."""
    compiled = compile_graph(flat_graph(nir.read(path)), dt=1e-4)
    fixed = compile_fixed(compiled)
    graph = loihi_groups(fixed)
    names = [g.name for g in graph.groups]
    T, N = x.shape[:2]
    flat = x.reshape(T, N, -1).astype(np.uint8)
    lorsp_fixed = layer_spikes(fixed, x, names)
    float_spikes = layer_spikes(compiled, x, names)
    report = simulate_compiled(compiled, x, path=path, input_spec="benchmark", dt_origin="1e-4 (snnTorch)").report
    sf = run_sanafe(graph, flat)
    sf_list, fixed_list, float_list = ([d[n] for n in names] for d in (sf["spikes"], lorsp_fixed, float_spikes))

    lorsp_synops_fixed = synops_on(graph, flat, lorsp_fixed)
    sanafe_synops = sf["per_sample"]["synapse_events"]
    table = next(e for e in report["energy"] if e.get("table") == "loihi-sanafe")
    neurons = sum(g.size for g in graph.groups)
    mean = lambda a: float(np.mean(a))  # noqa: E731
    result = {
        "network": {
            "groups": [{"name": g.name, "shape": list(g.shape), "depth": g.depth,
                        "vth": sorted({int(v) for v in g.threshold}),
                        "leak_decay": sorted({float(v) for v in g.leak_decay}),
                        "nonzero_biases": int(np.count_nonzero(g.bias))} for g in graph.groups],
            "connections": [{"node": c.node, "source": c.source, "target": c.target, "recurrent": c.recurrent,
                             "via": c.via, "synapses": int(len(c.weight))} for c in graph.connections],
            "neurons": neurons, "synapses": int(sum(len(c.weight) for c in graph.connections)),
            "conv2d_through_connect_neurons_conv2d": conv2d_check(fixed, graph)},
        "input": {"steps": T, "samples": N, "spikes_per_sample": float(flat.sum() / N)},
        "sanafe_steps": sf["steps"],
        "spikes": {
            "groups": names,
            "shift_steps": [g.depth for g in graph.groups],
            "sanafe_vs_lorsp_fixed_agreement": agreement(sf_list, fixed_list),
            "sanafe_equals_lorsp_fixed": all(np.array_equal(a, b) for a, b in zip(sf_list, fixed_list)),
            "sanafe_vs_lorsp_float_agreement": agreement(sf_list, float_list),
            "lorsp_fixed_vs_float_agreement": agreement(fixed_list, float_list),
            "spikes_outside_window": sf["spikes_outside_window"],
            "per_sample": {"sanafe": mean(sf["per_sample"]["fired"]),
                           "lorsp_fixed": mean(sum(s.sum(axis=(0, 2)) for s in fixed_list)),
                           "lorsp_float_report": report["activity"]["spike"]},
        },
        "synops_per_sample": {
            "sanafe": mean(sanafe_synops),
            "lorsp_rule_on_lorsp_fixed_spikes": mean(lorsp_synops_fixed),
            "equal_every_sample": bool(np.array_equal(sanafe_synops, lorsp_synops_fixed)),
            "lorsp_float_report": report["activity"]["synop"],
            "last_step_recurrent_events_on_lorsp_fixed_spikes": last_step_recurrent(graph, lorsp_fixed),
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
            "reconciliation": {**reconcile(sf, report, neurons, T, flat),
                               "packets_on_lorsp_fixed_spikes_one_per_destination_core":
                                   mean(packets_on(graph, flat, lorsp_fixed)),
                               "packets_equal_every_sample": bool(np.array_equal(
                                   sf["per_sample"]["packets"], packets_on(graph, flat, lorsp_fixed)))},
            "lorsp_counts": report["activity"],
        },
        "seconds": {"sanafe": sf["seconds"], "lorsp_float": report["runs"]["float"]["performance"]["seconds"]},
    }
    if naive and any(np.any(g.bias != 0) for g in graph.groups):
        plain = run_sanafe(graph, flat, aligned=False)
        result["naive_bias_from_step_0"] = {
            "sanafe_vs_lorsp_fixed_agreement": agreement([plain["spikes"][n] for n in names], fixed_list),
            "spikes_per_sample_in_window": mean(sum(plain["spikes"][n].sum(axis=(0, 2)) for n in names)),
            "spikes_outside_window": plain["spikes_outside_window"],
            "sanafe_total_pj": mean(plain["energy_j"]["total"]) * PJ}
    return result


def reconcile(sf: dict, report: dict, neurons: int, T: int, x: np.ndarray) -> dict:
    """SANA-FE's energy parts rebuilt from its own counts with loihi.yaml's figures, next to lorsp's counts.

    Soma: 51.2 pJ access per LIF neuron per step (``steps`` = T + depth there, T in lorsp), 21.6 pJ
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


def provenance() -> dict:
    from importlib.metadata import version

    return {"python": platform.python_version(), "machine": platform.machine(),
            **{p: version(p) for p in ("sanafe", "torch", "numpy", "snntorch", "nir")}}


def ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",")]


def build(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    """The NIR file to compare and a line saying what it is."""
    if args.nir is not None:
        return args.nir, str(args.nir)
    bias = not args.no_bias
    if args.net == "chain":
        sizes = ints(args.sizes or "100,64,32,10")
        return export(snntorch_chain(sizes, args.seed), (sizes[0],), tmp / "net.nir"), \
            f"snnTorch Linear+Leaky chain {sizes} (no bias), seed {args.seed}, exported with export_to_nir"
    if args.net == "conv":
        image, channels = tuple(ints(args.image)), ints(args.sizes or "8,16")
        net = snntorch_conv(image, channels, args.classes, args.seed, bias=bias)
        return export(net, image, tmp / "net.nir"), \
            (f"snnTorch conv net {image} -> " + " -> ".join(f"Conv2d {c} 3x3 (pad {0 if i == 0 else 1}) + Leaky + "
                                                          f"AvgPool2d 2" for i, c in enumerate(channels))
             + f" -> Linear {args.classes} + Leaky, bias {bias}, seed {args.seed}, exported with export_to_nir")
    sizes = ints(args.sizes or "100,512,10")
    return export(snntorch_recurrent(sizes, args.seed, bias=bias), (sizes[0],), tmp / "net.nir"), \
        (f"snnTorch Linear {sizes[1]} -> RLeaky {sizes[1]} (reset subtract) -> Linear {sizes[2]} -> Leaky, "
         f"input {sizes[0]}, bias {bias}, seed {args.seed}, exported with export_to_nir")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--net", choices=("chain", "conv", "recurrent"), default="chain")
    parser.add_argument("--sizes", help="chain: layer sizes, input first (100,64,32,10); conv: channels (8,16); "
                                        "recurrent: input,recurrent,output (100,512,10)")
    parser.add_argument("--image", default="2,18,18", help="conv: the input's C,H,W")
    parser.add_argument("--classes", type=int, default=10, help="conv: the read-out layer's size")
    parser.add_argument("--no-bias", action="store_true", help="conv, recurrent: no biases")
    parser.add_argument("--naive", action="store_true", help="also run biases from SANA-FE's step 0")
    parser.add_argument("--nir", type=Path, help="a NIR graph instead of an snnTorch network")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path, source = build(args, Path(tmp))
        shape = flat_graph(nir.read(path)).input_shape
        rng = np.random.default_rng(args.seed)
        x = (rng.random((args.steps, args.samples, *shape)) < args.rate).astype(np.float32)
        result = {"command": "benchmarks/sanafe_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  "graph": source, "input_rate": args.rate, **compare(path, x, naive=args.naive),
                  "provenance": provenance()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
