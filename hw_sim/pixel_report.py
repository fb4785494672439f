"""The report of ``lorsp-hwsim DIR`` on a pixel bundle: ``report.json``, ``report.md``, ``report.html``, one figure.

The same sections as a chain bundle's report (:mod:`hw_sim.report`) where they apply: the network on the
chip, fidelity against the PyTorch model rebuilt from the bundle, activity and energy per image, the
fixed-point integers, the simulator's speed; then the chip fit and, with ``--backend lava``, Lava's runs
against the graph path (the blocks of :mod:`hw_sim.graph.report`).
"""
from __future__ import annotations

from pathlib import Path

from hw_sim.graph.report import chip_fit_blocks, lava_blocks
from hw_sim.render import Block, Figure, Heading, Paragraph, Table, fmt_num, fmt_pct, write_documents
from hw_sim.report import plot_energy, primary_mode


def write_pixel_report(report: dict, out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` and the energy figure into ``out_dir``."""
    return write_documents(report, pixel_blocks(report), out_dir, "report")


def pixel_blocks(r: dict) -> list[Block]:
    """The report's content (module docstring)."""
    runs, mode, prov = r["runs"], primary_mode(r), r["provenance"]
    net = r["network"][0]
    blocks: list[Block] = [
        Heading("Loihi simulation report: pixel gates", 1),
        Paragraph(f"Bundle `{r['bundle']['path']}` (chip network {r['chip_network']}); {r['samples']} images of the "
                  f"{r['dataset']} {r['split']} split at {r['image_size']} px; T = {r['time_steps']} steps, encoding "
                  f"{r['encoding']['name']} ({r['encoding']['inputs']} inputs); backend `{r['backend']}`, modes "
                  f"{', '.join(r['modes'])}. Chip part: {r['path']}."),
        Paragraph(f"Machine: {prov['machine']}. Commit {prov['git_commit']}. Command: `{prov['command']}`."),
        Heading("Network on the chip"),
        Table(["layer", "NIR nodes", "inputs", "neurons", "kernel", "nonzero kernel weights", "beta", "threshold"],
              [[net["name"], ", ".join(net["nir_nodes"]), net["inputs"], net["neurons"], "x".join(map(str, net["kernel"])),
                net["synapses_nonzero"], fmt_num(net["beta"][0]), fmt_num(net["threshold"][0])]]),
        Heading("Fidelity against the PyTorch gates"),
        Table(["mode", "gate spike agreement", "all spikes equal", "prompt max abs diff", "prompt rel. L2",
               "accuracy PyTorch", "accuracy chip", "change", "same prediction"],
              [[m, fmt_pct(f["spikes"]["overall"]), str(f["spikes"]["exact"]), fmt_num(f["prompt_max_abs_diff"]),
                fmt_num(f["prompt_rel_l2_diff"]), fmt_pct(f["accuracy_pytorch"]), fmt_pct(f["accuracy_chip"]),
                f"{100 * f['accuracy_change']:+.2f} pt", fmt_pct(f["prediction_agreement"])]
               for m, f in ((m, runs[m]["fidelity"]) for m in runs)]),
        Paragraph("The prompt of the 'chip' columns is the low-rank prompt times the mask of the simulated gates that "
                  "fired, built on the host; the backbone and head then classify the prompted image."),
        Heading("Activity per image"),
        Table(["source", "input spikes", "gate spikes", "firing rate", "synops (AC)", "neuron updates (active)"],
              [["PyTorch", fmt_num(r["pytorch"]["activity"]["input_spikes_per_image"]),
                fmt_num(r["pytorch"]["activity"]["spikes_per_image"][0]), "", "", ""]]
              + [[f"chip, {m}", fmt_num(a["input_spikes_per_image"]), fmt_num(a["spikes_per_image"][0]),
                  fmt_pct(a["firing_rate"][0]), fmt_num(a["synops_total_per_image"]),
                  f"{fmt_num(sum(a['neuron_updates_per_image']))} ({fmt_num(sum(a['active_neuron_updates_per_image']))})"]
                 for m, a in ((m, runs[m]["activity"]) for m in runs)]),
        Heading(f"Energy per image ({mode} mode)"),
        Table(["table", "operation", "count", "pJ each", "nJ"],
              [[e["title"], line["operation"], fmt_num(line["count"]), fmt_num(line["pj_each"]),
                fmt_num(line["pj"] / 1e3)] for e in runs[mode]["energy"] for line in e["lines"]]
              + [[e["title"], "**total**", "", "", f"**{fmt_num(e['total_nj'])}**"] for e in runs[mode]["energy"]]),
        Paragraph("Left out of every total above: "
                  + "; ".join(f"{x['line']} ({'n/a' if x['count'] is None else fmt_num(x['count'])}): {x['why']}"
                              for x in runs[mode]["left_out"]) + "."),
    ]
    if "fixed" in runs:
        fx, exact = runs["fixed"]["fixed_point"][0], runs["fixed"]["fixed_point_exact"]
        blocks += [Heading("Fixed-point conversion"),
                   Table(["layer", "scale", "sign mode", "kernel", "bias mantissa (exp 6)", "vth", "du", "dv",
                          "exact by construction"],
                         [[fx["name"], fmt_num(fx["scale"]), fx["sign_mode"], f"{fx['weight_range'][0]}..{fx['weight_range'][1]}",
                           f"{fx['bias_mant_range'][0]}..{fx['bias_mant_range'][1]}", fmt_num(fx["vth"][0]),
                           fmt_num(fx["du"][0]), fmt_num(fx["dv"][0]),
                           str(exact["exact"]) + ("" if exact["exact"] else ": " + "; ".join(exact["layers"][0]["why_not"]))]])]
    blocks += [Heading("Simulator speed"),
               Table(["mode", "wall s", "images/s", "steps per sample"],
                     [[m, fmt_num(p["seconds"]), fmt_num(p["images_per_s"]), p["steps"]]
                      for m, p in ((m, runs[m]["performance"]) for m in runs)])]
    blocks += [b for fit in r.get("chip_fit", {}).values() for b in chip_fit_blocks(fit, "float graph")]
    for lava_mode, block in r.get("lava", {}).items():
        blocks += lava_blocks(lava_mode, block)
    blocks += [Heading("Figures"),
               Figure("energy.png", plot_energy(r, mode), f"Energy per image by operation ({mode} mode); "
                      f"data movement left out.")]
    return blocks
