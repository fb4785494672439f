"""Reports of a simulation: ``report.json`` for machines, Markdown and HTML for people.

The content is defined once, as blocks of :mod:`hw_sim.render` (headings, paragraphs,
tables, figures), and rendered twice: Markdown links the PNG files, HTML inlines them.
Figures: the spike raster of one sample, the firing rate per layer, the energy per image.
"""
from __future__ import annotations

from pathlib import Path

from hw_sim.render import (Block, Figure, Heading, Paragraph, Table, figure_png, fmt_num, fmt_pct, pyplot,
                           write_documents)

PRIMARY_MODE_ORDER = ("fixed", "float")


def write_report(report: dict, out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` and the PNGs into ``out_dir``."""
    return write_documents(report, report_blocks(report), out_dir, "report")


def primary_mode(report: dict) -> str:
    """The mode whose activity and energy headline the report (fixed point when it ran)."""
    return next(m for m in PRIMARY_MODE_ORDER if m in report["runs"])


# --------------------------------------------------------------------------- content
def report_blocks(r: dict) -> list[Block]:
    runs, mode = r["runs"], primary_mode(r)
    prov = r["provenance"]
    names = [l["name"] for l in r["network"]]
    blocks: list[Block] = [
        Heading("Loihi simulation report", 1),
        Paragraph(f"Bundle `{r['bundle']['path']}`; {r['samples']} images of the {r['dataset']} {r['split']} split "
                  f"at {r['image_size']} px; T = {r['time_steps']} steps, encoding {r['encoding']['name']} ({r['encoding']['inputs']} inputs); backend "
                  f"`{r['backend']}`, modes {', '.join(r['modes'])}."),
        Paragraph(f"Machine: {prov['machine']}. Commit {prov['git_commit']}. Command: `{prov['command']}`."),
        Heading("Network on the chip"),
        Table(["layer", "NIR nodes", "inputs", "neurons", "nonzero synapses", "beta", "threshold"],
              [[l["name"], ", ".join(l["nir_nodes"]), l["inputs"], l["neurons"], l["synapses_nonzero"],
                _join(l["beta"]), _join(l["threshold"])] for l in r["network"]]),
        Heading("Fidelity against the PyTorch generator"),
        Table(["mode", "spike agreement per layer", "all spikes equal", "prompt max abs diff", "prompt rel. L2",
               "accuracy PyTorch", "accuracy chip", "change", "same prediction"],
              [[m, " / ".join(fmt_pct(l["agreement"]) for l in f["spikes"]["per_layer"]), str(f["spikes"]["exact"]),
                fmt_num(f["prompt_max_abs_diff"]), fmt_num(f["prompt_rel_l2_diff"]), fmt_pct(f["accuracy_pytorch"]),
                fmt_pct(f["accuracy_chip"]), f"{100 * f['accuracy_change']:+.2f} pt", fmt_pct(f["prediction_agreement"])]
               for m, f in ((m, runs[m]["fidelity"]) for m in runs)]),
        Paragraph("The prompt of the 'chip' columns is built on the host from the simulated gate spikes; "
                  "the backbone and head then classify the prompted image."),
        Heading("Activity per image"),
        Table(["source", "input spikes", *[f"spikes {n}" for n in names], *[f"firing rate {n}" for n in names],
               "synops (AC)", "neuron updates (active)"],
              [[src, fmt_num(a["input_spikes_per_image"]), *[fmt_num(s) for s in a["spikes_per_image"]],
                *[fmt_pct(f) for f in a["firing_rate"]], fmt_num(a["synops_total_per_image"]),
                f"{fmt_num(sum(a['neuron_updates_per_image']))} ({fmt_num(sum(a['active_neuron_updates_per_image']))})"]
               for src, a in [("PyTorch", r["pytorch"]["activity"])] + [(f"chip, {m}", runs[m]["activity"])
                                                                         for m in runs]]),
        Heading(f"Energy per image ({mode} mode)"),
        Table(["table", "operation", "count", "pJ each", "nJ"],
              [[e["title"], line["operation"], fmt_num(line["count"]), fmt_num(line["pj_each"]), fmt_num(line["pj"] / 1e3)]
               for e in runs[mode]["energy"] for line in e["lines"]]
              + [[e["title"], "**total**", "", "", f"**{fmt_num(e['total_nj'])}**"] for e in runs[mode]["energy"]]),
        Paragraph("Left out of every total above (data movement and static power, which no table prices):"),
        Table(["line", "count per image", "why"],
              [[x["line"], "n/a" if x["count"] is None else fmt_num(x["count"]), x["why"]]
               for x in runs[mode]["left_out"]]),
    ]
    if "fixed" in runs:
        blocks += [Heading("Fixed-point conversion"),
                   Table(["layer", "scale", "sign mode", "weights", "bias mantissa (exp 6)", "vth", "du", "dv",
                          "max abs(w/s - W)", "weights rounded to 0"],
                         [[f["name"], fmt_num(f["scale"]), f["sign_mode"], _span(f["weight_range"]),
                           _span(f["bias_mant_range"]), _join(f["vth"]), _join(f["du"]),
                           _join(f["dv"]), fmt_num(f["weight_max_abs_error"]), f["weights_rounded_to_zero"]]
                          for f in runs["fixed"]["fixed_point"]])]
    blocks += [
        Heading("Simulator speed"),
        Table(["mode", "wall s (all)", "first chunk s (incl. compile)", "run s", "images/s (all)",
               "images/s (after the first chunk)", "steps per sample"],
              [[m, fmt_num(p["seconds"]), fmt_num(p.get("first_chunk_seconds")), fmt_num(p["run_seconds"]),
                fmt_num(p["images_per_s"]), fmt_num(p.get("steady_images_per_s")), p["steps"]]
               for m, p in ((m, runs[m]["performance"]) for m in runs)]),
        Heading("Figures"),
        Figure("raster.png", plot_raster(r, mode), f"Spikes of test image {r['raster']['sample']} "
               f"(label {r['raster']['label']}), {mode} mode; red: differs from PyTorch."),
        Figure("firing_rates.png", plot_firing_rates(r), "Firing rate per layer."),
        Figure("energy.png", plot_energy(r, mode), f"Energy per image by operation ({mode} mode); "
               f"data movement left out."),
        Heading("Energy tables"),
        Table(["table", "pJ per operation", "source", "note"],
              [[t["title"], ", ".join(f"{k} {v:g}" for k, v in t["pj"].items()), t["source"], t["note"]]
               for t in r["energy_tables"].values()]),
    ]
    return blocks


def _span(low_high: list[int]) -> str:
    return f"{low_high[0]}..{low_high[1]}"


def _join(values: list) -> str:
    return ", ".join(fmt_num(v) for v in values)


def plot_raster(r: dict, mode: str) -> bytes:
    plt = pyplot()
    raster = r["raster"]
    panels = [("input", raster["input"], None)] + [
        (name, sim, ref) for name, sim, ref in zip(raster["layer_names"], raster[mode], raster["pytorch"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), sharey=True)
    for ax, (name, sim, ref), size in zip(axes, panels, raster["sizes"]):
        sim_set = {tuple(e) for e in sim}
        ref_set = sim_set if ref is None else {tuple(e) for e in ref}
        same = sim_set & ref_set
        diff = sim_set ^ ref_set
        if same:
            ax.scatter([i for _, i in same], [t for t, _ in same], s=9, c="k", marker="|")
        if diff:
            ax.scatter([i for _, i in diff], [t for t, _ in diff], s=30, c="red", marker="x")
        ax.set(title=f"{'' if ref is None else 'layer '}{name} ({size})", xlabel="neuron", xlim=(-0.5, size - 0.5))
    axes[0].set_ylabel("step")
    axes[0].set_ylim(r["time_steps"] - 0.5, -0.5)
    return figure_png(fig)


def plot_firing_rates(r: dict) -> bytes:
    plt = pyplot()
    names = [l["name"] for l in r["network"]]
    series = [("PyTorch", r["pytorch"]["activity"]["firing_rate"])] + [
        (f"chip, {m}", run["activity"]["firing_rate"]) for m, run in r["runs"].items()]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    width = 0.8 / len(series)
    for j, (label, rates) in enumerate(series):
        ax.bar([i + j * width for i in range(len(names))], rates, width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], [f"layer {n}" for n in names])
    ax.set(ylabel="spikes / neuron / step")
    ax.legend(fontsize=8)
    return figure_png(fig)


def plot_energy(r: dict, mode: str) -> bytes:
    plt = pyplot()
    tables = r["runs"][mode]["energy"]
    ops = list(dict.fromkeys(line["operation"] for t in tables for line in t["lines"]))
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.6 * len(tables)))
    left = [0.0] * len(tables)
    for op in ops:
        values = [next((l["pj"] / 1e3 for l in t["lines"] if l["operation"] == op), 0.0) for t in tables]
        ax.barh(range(len(tables)), values, left=left, label=op)
        left = [a + b for a, b in zip(left, values)]
    for i, total in enumerate(left):
        ax.text(total, i, f" {total:.3g} nJ", va="center", fontsize=8)
    ax.set_yticks(range(len(tables)), [t["title"] for t in tables], fontsize=8)
    ax.set_xlim(0, 1.2 * max(left))
    ax.set(xlabel="nJ per image (data movement not included)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure_png(fig)
