"""The co-simulation report: ``cosim.json``, ``cosim.md`` and ``cosim.html`` with its figures.

Built from the dict of :func:`hw_sim.cosim.cosimulate` as blocks of :mod:`hw_sim.render`
(rendered there, figures inline in the HTML). Figures: energy per image by stage, the split
stacked against the dense alternatives; wall time per image by stage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hw_sim.render import Block, Figure, Heading, Paragraph, Table, figure_png, fmt_num, fmt_pct, pyplot, write_documents
from hw_sim.stage_energy import STAGES

STEM = "cosim"
TITLES = {"encode": "encoding (host)", "generator": "prompt generator", "prompt": "prompt (host)",
          "backbone": "backbone + head"}


def write_cosim_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``cosim.json``, ``cosim.md``, ``cosim.html`` and the PNGs into ``out_dir``."""
    return write_documents(report, cosim_blocks(report), out_dir, STEM)


def agreement_line(r: dict[str, Any]) -> str:
    """``agreement 99.72% (359/360) of predictions ...``: the headline of a co-simulation."""
    a = r["agreement"]
    return (f"agreement {100 * a['share']:.2f}% ({a['equal']}/{a['samples']}) of predictions with PyTorch; "
            f"accuracy split pipeline {r['accuracy']['cosim']:.4f}, PyTorch {r['accuracy']['pytorch']:.4f}; "
            f"max |logit diff| {r['max_abs_logit_diff']:.3g}")


def energy_line(r: dict[str, Any]) -> str:
    e = r["energy"]
    stages = ", ".join(f"{s['stage']} {_nj(s['pj'])}" for s in e["stages"])
    others = "; ".join(f"{s['title']} {_nj(s['total_pj'])}" for s in e["scenarios"][1:])
    return f"energy per image: {stages}; total {_nj(e['total_pj'])} (vs {others})"


def latency_line(r: dict[str, Any]) -> str:
    lat = r["latency"]
    stages = ", ".join(f"{s['stage']} {s['ms_per_image']:.3f}" for s in lat["stages"])
    return (f"wall time per image on this CPU, ms (batch {r['batch_size']}): {stages}; pipeline "
            f"{lat['pipeline_ms_per_image']:.3f} ({fmt_num(lat['pipeline_images_per_s'])} images/s), "
            f"PyTorch {lat['pytorch_ms_per_image']:.3f}")


def _nj(pj: float) -> str:
    return f"{pj / 1e6:.4g} uJ" if pj >= 1e6 else f"{pj / 1e3:.4g} nJ"


def cosim_blocks(r: dict[str, Any]) -> list[Block]:
    e, lat, prov = r["energy"], r["latency"], r["provenance"]
    split_total = e["scenarios"][0]["total_pj"]
    return [
        Heading("Co-simulation of the deployment split", 1),
        Paragraph(f"Bundle `{r['bundle']['path']}` ({r['bundle']['artifacts_verified']} artifacts verified "
                  f"against manifest.json); {r['samples']} images of the {r['dataset']} {r['split']} split at "
                  f"{r['image_size']} px; T = {r['time_steps']} steps, encoding {r['encoding']['name']} ({r['encoding']['inputs']} inputs). Generator on the "
                  f"`{r['backend']}` simulator in {r['mode']} mode; backbone `{r['onnx_file']}` ({r['precision']}) "
                  f"in onnxruntime on {', '.join(r['providers'])}; batches of {r['batch_size']}."),
        Paragraph(f"Machine: {prov['machine']}. Commit {prov['git_commit']}. Command: `{prov['command']}`."),
        Heading("Against the PyTorch model"),
        Table(["", "value"], [
            ["same prediction", f"{fmt_pct(r['agreement']['share'])} ({r['agreement']['equal']}/{r['samples']})"],
            ["accuracy, split pipeline", fmt_pct(r["accuracy"]["cosim"])],
            ["accuracy, PyTorch", fmt_pct(r["accuracy"]["pytorch"])],
            ["largest abs logit difference", fmt_num(r["max_abs_logit_diff"])],
            ["largest abs difference of the prompted image", fmt_num(r["prompted_max_abs_diff"])],
            ["spike agreement per layer", " / ".join(fmt_pct(l["agreement"]) for l in r["spikes"]["per_layer"])],
            ["images with every spike equal", f"{r['spikes']['samples_all_equal']} / {r['samples']}"]]),
        Heading("Energy per image, by stage"),
        Table(["stage", "where", "operations", "priced with", "nJ", "share of total"],
              [[TITLES[s["stage"]], s["where"], ", ".join(f"{k} {fmt_num(v)}" for k, v in s["operations"].items()),
                s["priced_with"], fmt_num(s["nj"]), fmt_pct(s["pj"] / split_total)] for s in e["stages"]]
              + [["**total**", "", "", "", f"**{fmt_num(e['total_pj'] / 1e3)}**", "100.00%"]]),
        Table(["alternative", *[TITLES[s] for s in STAGES], "total nJ", "vs split"],
              [[s["title"], *[fmt_num(s["stages_pj"][st] / 1e3) if st in s["stages_pj"] else "" for st in STAGES],
                fmt_num(s["total_nj"]), f"{s['total_pj'] / split_total:.4f}x"] for s in e["scenarios"]]),
        Paragraph(f"Host operations are priced as {e['host_precision']} arithmetic "
                  f"(add {e['host_pj_per_op']['add']:g} pJ, multiply {e['host_pj_per_op']['mult']:g} pJ; "
                  f"{e['host_source']}). Left out of every total (no table prices them):"),
        Table(["line", "count per image", "why"],
              [[x["line"], "n/a" if x["count"] is None else fmt_num(x["count"]), x["why"]] for x in e["left_out"]]),
        Heading("Wall time per image, by stage"),
        Table(["stage", "where", "ms per image", "share"],
              [[TITLES[s["stage"]], s["where"], fmt_num(s["ms_per_image"]), fmt_pct(s["share"])] for s in lat["stages"]]
              + [["**split pipeline**", "", f"**{fmt_num(lat['pipeline_ms_per_image'])}**", "100.00%"],
                 ["PyTorch model (reference)", "this CPU", fmt_num(lat["pytorch_ms_per_image"]), ""]]),
        Paragraph(f"Throughput: split pipeline {fmt_num(lat['pipeline_images_per_s'])} images/s; the backbone stage "
                  f"alone {fmt_num(lat['backbone_only_images_per_s'])} images/s. {lat['note']}."),
        Heading("Figures"),
        Figure("cosim_energy.png", plot_stage_energy(r), "Energy per image by stage: the split against the "
               "dense alternatives (data movement and static power left out)."),
        Figure("cosim_latency.png", plot_stage_latency(r), "Wall time per image by stage, measured on this CPU."),
        Heading("Energy tables"),
        Table(["table", "pJ per operation", "source", "note"],
              [[t["title"], ", ".join(f"{k} {v:g}" for k, v in t["pj"].items()), t["source"], t["note"]]
               for t in e["tables"].values()]),
    ]


def plot_stage_energy(r: dict[str, Any]) -> bytes:
    """Stacked energy per stage of each scenario: all of it (uJ), and all but the backbone (nJ), side by side."""
    plt = pyplot()
    scenarios = r["energy"]["scenarios"]
    panels = [(STAGES, 1e6, "uJ", "per image"), (STAGES[:-1], 1e3, "nJ", "per image, backbone left out")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.6 * len(scenarios)), sharey=True)
    for ax, (stages, unit, name, what) in zip(axes, panels):
        left = [0.0] * len(scenarios)
        for i, stage in enumerate(stages):
            values = [s["stages_pj"].get(stage, 0.0) / unit for s in scenarios]
            ax.barh(range(len(scenarios)), values, left=left, color=f"C{i}", label=TITLES[stage])
            left = [a + b for a, b in zip(left, values)]
        for i, total in enumerate(left):
            ax.text(total, i, f" {total:.4g} {name}", va="center", fontsize=8)
        ax.set_xlim(0, 1.3 * max(max(left), 1e-12))
        ax.set(xlabel=f"{name} {what}")
    axes[0].set_yticks(range(len(scenarios)), [s["title"] for s in scenarios], fontsize=8)
    axes[0].invert_yaxis()
    axes[1].legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="lower right")  # its last bar is empty
    fig.suptitle(f"backbone {r['precision']}; data movement and static power not included", fontsize=9)
    return figure_png(fig)


def plot_stage_latency(r: dict[str, Any]) -> bytes:
    plt = pyplot()
    stages = r["latency"]["stages"]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    values = [s["ms_per_image"] for s in stages]
    ax.barh(range(len(stages)), values, color=[f"C{i}" for i in range(len(stages))])
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3g} ms", va="center", fontsize=8)
    ax.set_yticks(range(len(stages)), [TITLES[s["stage"]] for s in stages], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.25 * max(values))
    ax.set(xlabel=f"ms per image, wall time on this CPU (batch {r['batch_size']}, {r['backend']} simulator)")
    return figure_png(fig)
