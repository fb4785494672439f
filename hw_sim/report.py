"""Reports of a simulation: ``report.json`` for machines, Markdown and HTML for people.

The content is defined once, as a list of blocks (headings, paragraphs, tables, figures),
and rendered twice: Markdown links the PNG files written beside it, HTML inlines them.
Figures: the spike raster of one sample, the firing rate per layer, the energy per image.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorsp.fileio import atomic_write, write_json

PRIMARY_MODE_ORDER = ("fixed", "float")


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Figure:
    filename: str
    png: bytes
    caption: str


Block = Heading | Paragraph | Table | Figure


def write_report(report: dict, out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` and the PNGs into ``out_dir``."""
    return write_documents(report, report_blocks(report), out_dir, "report")


def write_documents(data: dict, blocks: list[Block], out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``data`` as ``STEM.json`` and ``blocks`` as ``STEM.md``, ``STEM.html`` and PNGs, each atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_json(out_dir / f"{stem}.json", data)]
    for block in blocks:
        if isinstance(block, Figure):
            written.append(atomic_write(out_dir / block.filename, lambda tmp, b=block: tmp.write_bytes(b.png)))
    written.append(atomic_write(out_dir / f"{stem}.md", lambda tmp: tmp.write_text(render_markdown(blocks))))
    written.append(atomic_write(out_dir / f"{stem}.html", lambda tmp: tmp.write_text(render_html(blocks))))
    return written


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
                  f"at {r['image_size']} px; T = {r['time_steps']} steps, pool {r['pool']}; backend "
                  f"`{r['backend']}`, modes {', '.join(r['modes'])}."),
        Paragraph(f"Machine: {prov['machine']}. Commit {prov['git_commit']}. Command: `{prov['command']}`."),
        Heading("Network on the chip"),
        Table(["layer", "NIR nodes", "inputs", "neurons", "nonzero synapses", "beta", "threshold"],
              [[l["name"], ", ".join(l["nir_nodes"]), l["inputs"], l["neurons"], l["synapses_nonzero"],
                _join(l["beta"]), _join(l["threshold"])] for l in r["network"]]),
        Heading("Fidelity against the PyTorch generator"),
        Table(["mode", "spike agreement per layer", "all spikes equal", "prompt max abs diff", "prompt rel. L2",
               "accuracy PyTorch", "accuracy chip", "change", "same prediction"],
              [[m, " / ".join(_pct(l["agreement"]) for l in f["spikes"]["per_layer"]), str(f["spikes"]["exact"]),
                _num(f["prompt_max_abs_diff"]), _num(f["prompt_rel_l2_diff"]), _pct(f["accuracy_pytorch"]),
                _pct(f["accuracy_chip"]), f"{100 * f['accuracy_change']:+.2f} pt", _pct(f["prediction_agreement"])]
               for m, f in ((m, runs[m]["fidelity"]) for m in runs)]),
        Paragraph("The prompt of the 'chip' columns is built on the host from the simulated gate spikes; "
                  "the backbone and head then classify the prompted image."),
        Heading("Activity per image"),
        Table(["source", "input spikes", *[f"spikes {n}" for n in names], *[f"firing rate {n}" for n in names],
               "synops (AC)", "neuron updates (active)"],
              [[src, _num(a["input_spikes_per_image"]), *[_num(s) for s in a["spikes_per_image"]],
                *[_pct(f) for f in a["firing_rate"]], _num(a["synops_total_per_image"]),
                f"{_num(sum(a['neuron_updates_per_image']))} ({_num(sum(a['active_neuron_updates_per_image']))})"]
               for src, a in [("PyTorch", r["pytorch"]["activity"])] + [(f"chip, {m}", runs[m]["activity"])
                                                                         for m in runs]]),
        Heading(f"Energy per image ({mode} mode)"),
        Table(["table", "operation", "count", "pJ each", "nJ"],
              [[e["title"], line["operation"], _num(line["count"]), _num(line["pj_each"]), _num(line["pj"] / 1e3)]
               for e in runs[mode]["energy"] for line in e["lines"]]
              + [[e["title"], "**total**", "", "", f"**{_num(e['total_nj'])}**"] for e in runs[mode]["energy"]]),
        Paragraph("Left out of every total above (data movement and static power, which no table prices):"),
        Table(["line", "count per image", "why"],
              [[x["line"], "n/a" if x["count"] is None else _num(x["count"]), x["why"]]
               for x in runs[mode]["left_out"]]),
    ]
    if "fixed" in runs:
        blocks += [Heading("Fixed-point conversion"),
                   Table(["layer", "scale", "sign mode", "weights", "bias mantissa (exp 6)", "vth", "du", "dv",
                          "max abs(w/s - W)", "weights rounded to 0"],
                         [[f["name"], _num(f["scale"]), f["sign_mode"], _span(f["weight_range"]),
                           _span(f["bias_mant_range"]), _join(f["vth"]), _join(f["du"]),
                           _join(f["dv"]), _num(f["weight_max_abs_error"]), f["weights_rounded_to_zero"]]
                          for f in runs["fixed"]["fixed_point"]])]
    blocks += [
        Heading("Simulator speed"),
        Table(["mode", "wall s (all)", "first chunk s (incl. compile)", "run s", "images/s (all)",
               "images/s (after the first chunk)", "steps"],
              [[m, _num(p["seconds"]), _num(p.get("first_chunk_seconds")), _num(p["run_seconds"]),
                _num(p["images_per_s"]), _num(p.get("steady_images_per_s")), p["steps"]]
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


def _num(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e9):
        return f"{int(x):,}"
    return f"{x:.4g}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _span(low_high: list[int]) -> str:
    return f"{low_high[0]}..{low_high[1]}"


def _join(values: list) -> str:
    return ", ".join(_num(v) for v in values)


# --------------------------------------------------------------------------- renderers
def render_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}\n")
        elif isinstance(b, Paragraph):
            out.append(b.text + "\n")
        elif isinstance(b, Table):
            out.append("| " + " | ".join(b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(str(c) for c in row) + " |" for row in b.rows]
            out.append("")
        else:
            out.append(f"![{b.caption}]({b.filename})\n\n*{b.caption}*\n")
    return "\n".join(out)


def render_html(blocks: list[Block]) -> str:
    def text(s: str) -> str:  # the few Markdown marks the content uses
        s = html.escape(s)
        parts = s.split("`")
        s = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
        parts = s.split("**")
        return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))

    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{text(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{text(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{text(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{text(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{text(b.caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;"
             "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}")
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "lorsp report")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


# --------------------------------------------------------------------------- figures
def _figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_raster(r: dict, mode: str) -> bytes:
    plt = _pyplot()
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
    return _figure_png(fig)


def plot_firing_rates(r: dict) -> bytes:
    plt = _pyplot()
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
    return _figure_png(fig)


def plot_energy(r: dict, mode: str) -> bytes:
    plt = _pyplot()
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
    return _figure_png(fig)
