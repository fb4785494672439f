"""The report of a NIR graph run: ``report.json``, ``report.md``, ``report.html`` and ``outputs.npz``.

Blocks of :mod:`hw_sim.render`, as for a bundle's report; the arrays go to ``outputs.npz``
beside them (:func:`write_graph_report`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hw_sim.graph.simulate import GraphSimulation
from hw_sim.render import Block, Figure, Heading, Paragraph, Table, figure_png, fmt_num, fmt_pct, pyplot, \
    write_documents
from hw_sim.report import plot_energy
from lorsp.plumbing.fileio import atomic_write


def write_graph_report(sim: GraphSimulation, out_dir: str | Path) -> list[Path]:
    """Write the report documents and ``outputs.npz`` into ``out_dir``."""
    written = write_documents(sim.report, graph_blocks(sim.report), out_dir, "report")

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **sim.arrays)

    written.append(atomic_write(Path(out_dir) / "outputs.npz", save))
    return written


def _mean(row: dict, key: str) -> str:
    return fmt_num(row[key]["mean"]) if key in row else ""


def graph_blocks(r: dict) -> list[Block]:
    g, i, prov = r["graph"], r["input"], r["provenance"]
    blocks: list[Block] = [
        Heading("NIR graph on a simulated Loihi chip", 1),
        Paragraph(f"Graph `{g['path']}` ({g['nodes']} nodes, {g['edges']} edges; sha256 {g['sha256'][:16]}...); "
                  f"input `{i['spec']}`: {i['samples']} samples of {i['steps']} steps, shape {g['input_shape']}, "
                  f"{'binary spikes' if i['binary'] else 'graded values'}, {fmt_num(i['nonzero_per_sample'])} "
                  f"nonzero values per sample. dt = {r['dt']:g} s ({r['dt_source']}). Modes: {', '.join(r['modes'])}."),
        Paragraph(f"Discretisation: {r['conventions']}."),
        Paragraph(f"Machine: {prov['machine']}. Commit {prov['git_commit']}. Command: `{prov['command']}`."),
        Heading("Activity per node, per sample (mean over samples; float mode)"),
        Table(["node", "type", "shape", "neurons", "synapses", "spikes", "firing rate", "synops", "AC/MAC",
               "neuron updates (active)"],
              [[n["name"], n["kind"], "x".join(map(str, n["out_shape"])), fmt_num(n["neurons"]) if n["neurons"] else "",
                fmt_num(n["synapses"]) if n["synapses"] else "", _mean(n, "spikes_per_sample"),
                fmt_pct(n["firing_rate"]) if "firing_rate" in n else "", _mean(n, "synops_per_sample"),
                n.get("synop_kind", ""),
                f"{fmt_num(n['neuron_updates_per_sample'])} ({_mean(n, 'active_neuron_updates_per_sample')})"
                if "neuron_updates_per_sample" in n else ""] for n in r["nodes"]]),
        Heading("Outputs"),
        Table(["Output node", "from", "shape", "kind", "per sample", "in outputs.npz"],
              [[name, ", ".join(o["from"]), "x".join(map(str, o["shape"])), o["kind"],
                f"{fmt_num(o['spikes_per_sample'])} spikes" if "spikes_per_sample" in o else o["note"],
                f"`{o['array']}` (T, N, ...), `{o['array']}.counts`"] for name, o in r["outputs"].items()]),
        Heading("Energy per sample (float mode)"),
        Table(["table", "operation", "count", "pJ each", "nJ"],
              [[e["title"], line["operation"], fmt_num(line["count"]), fmt_num(line["pj_each"]),
                fmt_num(line["pj"] / 1e3)] for e in r["energy"] for line in e["lines"]]
              + [[e["title"], "**total**", "", "", f"**{fmt_num(e['total_nj'])}**"] for e in r["energy"]]),
        Paragraph("Left out of every total above (data movement and static power, which no table prices):"),
        Table(["line", "count per sample", "why"],
              [[x["line"], "n/a" if x["count"] is None else fmt_num(x["count"]), x["why"]] for x in r["left_out"]]),
    ]
    for fit in r["chip_fit"].values():
        blocks += chip_fit_blocks(fit, "float graph")
    if "fixed" in r["runs"]:
        blocks += fixed_blocks(r["runs"]["fixed"])
    for mode, lava in r.get("lava", {}).items():
        blocks += lava_blocks(mode, lava)
    blocks += [
        Heading("Figures"),
        Figure("firing_rates.png", plot_node_rates(r), "Firing rate of every spiking node (float mode)."),
        Figure("energy.png", plot_energy({"runs": {"float": {"energy": r["energy"]}}}, "float"),
               "Energy per sample by operation (float mode); data movement left out."),
        Heading("Simulator speed"),
        Table(["mode", "wall s", "samples/s", "steps"],
              [[m, fmt_num(p["performance"]["seconds"]), fmt_num(p["performance"].get("samples_per_s")),
                p["performance"].get("steps", "")] for m, p in r["runs"].items() if "performance" in p]),
        Heading("Energy tables"),
        Table(["table", "pJ per operation", "source", "note"],
              [[t["title"], ", ".join(f"{k} {v:g}" for k, v in t["pj"].items()), t["source"], t["note"]]
               for t in r["energy_tables"].values()]),
    ]
    return blocks


def lava_blocks(mode: str, lava: dict) -> list[Block]:
    """The report's section on one Lava run: per compartment node, spike (or read-out voltage) agreement."""
    if not lava["ran"]:
        return [Heading(f"Lava ({mode})"), Paragraph(f"Not run: {lava['reason']}.")]
    return [Heading(f"Lava ({mode}) against {lava['against']}"),
            Table(["node", "agreement (spikes, or voltages within 1e-5)", "all equal",
                   "spikes per sample (Lava) / largest voltage difference"],
                  [[n["node"], fmt_pct(n["agreement"]), str(n["exact"]),
                    fmt_num(n["spikes_per_sample"]) if "spikes_per_sample" in n else f"{n['max_abs_difference']:.3g}"]
                   for n in lava["per_node"]]),
            Paragraph(f"lava-nc 0.10.0 took {fmt_num(lava['seconds'])} s ({fmt_num(lava['samples_per_s'])} "
                      f"samples/s).")]


def chip_fit_blocks(fit: dict, label: str) -> list[Block]:
    """One chip's fit: cores against the limits, what the figures count, and a row per compartment node."""
    lim = fit["limits"]
    verdict = "fits" if fit["fits"] else "does NOT fit: " + "; ".join(fit["does_not_fit"])
    return [
        Heading(f"Chip fit: {fit['title']} ({label})"),
        Paragraph(f"{fit['cores_needed']} of {lim['cores']} cores: {verdict}. "
                  f"Limits: {fmt_num(lim['neurons_per_core'])} neurons and "
                  f"{fmt_num(lim['memory_per_core_bytes'] // 1024)} KB per core, {lim['weight_bits']}-bit synapses "
                  f"(source: {fit['source']}; {fit['note']}). Counts {fit['counts']}."
                  f" Placement rule: docs/hwsim-nir.md."
                  + (f" Bias neurons (always on, counted in their node's neurons): {fit['bias_neurons']}."
                     if fit.get("bias_neurons") else "")
                  + (f" Synapse nodes left to the host (they feed no neuron): "
                     f"{', '.join(fit['off_chip_synapse_nodes'])}." if fit["off_chip_synapse_nodes"] else "")),
        Table(["node", "type", "neurons", "synapses", "synaptic memory (bytes)", "cores", "limited by",
               "synapses from"],
              [[n["node"], n["kind"], fmt_num(n["neurons"]), fmt_num(n["synapses"]),
                fmt_num(n["synaptic_memory_bytes"]), n["cores"], n["limited_by"],
                ", ".join(f"{k} ({fmt_num(v)})" for k, v in n["synapses_from"].items())]
               for n in fit["nodes"]]),
    ]


def fixed_blocks(fixed: dict) -> list[Block]:
    """The fixed-point section: agreement per node, or why the graph has no fixed-point run."""
    if not fixed.get("ran"):
        return [Heading("Fixed point"), Paragraph(f"Not run: {fixed['reason']}")]
    return [
        Heading(f"Fixed point against float (spike agreement per node; {fixed['path']} path)"),
        Paragraph(fixed["how"]),
        Table(["node", "agreement (spikes; read-outs: equal voltages)", "all equal", "spikes per sample (fixed)",
               "largest voltage error (read-outs)", "scale", "exact by construction"],
              [[n["node"], fmt_pct(n["agreement"]), str(n["exact"]), fmt_num(n["spikes_per_sample"]),
                fmt_num(n.get("max_abs_error")), fmt_num(n.get("scale")), str(n.get("fixed_point_exact", "n/a"))]
               for n in fixed["per_node"]]),
    ] + [b for fit in fixed.get("chip_fit", {}).values()
         for b in chip_fit_blocks(fit, f"fixed point, {fixed['path']} path")]


def plot_node_rates(r: dict) -> bytes:
    """Bars: spikes per neuron per step of every spiking node, in graph order."""
    plt = pyplot()
    rows = [n for n in r["nodes"] if "firing_rate" in n]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(rows) + 2), 3.2))
    ax.bar(range(len(rows)), [n["firing_rate"] for n in rows])
    ax.set_xticks(range(len(rows)), [f"{n['name']}\n{n['kind']}" for n in rows], fontsize=7)
    ax.set(ylabel="spikes / neuron / step")
    return figure_png(fig)
