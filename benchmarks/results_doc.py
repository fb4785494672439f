"""Generate docs/results.md (and the README's results block) from the benchmark JSON: no hand-typed figure.

    python benchmarks/results_data.py           # collect: runs/... -> docs/data/results/ (small JSON, committed)
    python benchmarks/results_doc.py            # docs/data/results/ -> docs/results.md, figures, README block

With no options it reads only the committed data folder (``--data`` for another), so docs/results.md is
rebuilt byte for byte from what is in git; an input option (``--baselines runs/main/results.json``, ...)
reads that file instead, and the seeds' metrics.json of a table that was not collected are read from its
runs' folders. Each section appears only when its JSON exists; a missing one is listed at the end with
the command that makes it. ``make results`` runs every benchmark, collects, then runs this script.
"""
from __future__ import annotations

import argparse
import glob
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import energy_sweep, results_data, results_plots  # noqa: E402
from benchmarks.baselines import markdown as baselines_markdown, method_label, parse_method, stale_note  # noqa: E402
from benchmarks.deployment import markdown as deployment_markdown  # noqa: E402
from benchmarks.few_shot import markdown as few_shot_markdown  # noqa: E402
from benchmarks.gate_usage import markdown as gate_usage_markdown  # noqa: E402
from benchmarks.prompt_diagnostics import markdown as diagnostics_markdown  # noqa: E402
from benchmarks.lr_select import markdown as lr_select_markdown  # noqa: E402
from benchmarks.output import fail  # noqa: E402
from benchmarks.results_data import collected_runs, run_dir, seed_file  # noqa: E402
from benchmarks.results_targets import (CURVE_RULE, ON_PAR_TARGETS, first_specs, on_or_above,  # noqa: E402
                                        on_par, param_points, targets_section, variant, verdict)
from benchmarks.robustness import markdown as robustness_markdown  # noqa: E402
from benchmarks.train_speed import TARGET_STEP_RATIO  # noqa: E402
from lorsp.plumbing.fileio import atomic_write  # noqa: E402
from lorsp.metrics import FLIP_PAIRS, INSTANCE_IMAGES  # noqa: E402

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def load(path: str | None) -> dict | None:
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else None


# --------------------------------------------------------------------------- verdicts
def against_lorvp(res: dict[str, Any], band: bool = False) -> str | None:
    """One line for a whole accuracy table: the datasets where LoRSP wins, ties and loses against LoR-VP
    (``band``: its LoRSP rows ran the earlier band-gated design, said in the line)."""
    by_verdict: dict[str, list[str]] = {"wins": [], "ties": [], "loses": []}
    for dataset, by_spec in res["table"].items():
        methods = first_specs(by_spec)
        if "lorsp" in methods and "lorvp" in methods:
            v, d = verdict(methods["lorsp"][1], methods["lorvp"][1])
            by_verdict[v].append(f"{dataset} ({d:+.1f})")
    if not any(by_verdict.values()):
        return None
    parts = [f"{v} on {', '.join(where)}" for v, where in by_verdict.items() if where]
    design = " (the earlier band-gated design)" if band else ""
    return (f"- **{res['settings']['backbone']}**, LoRSP{design} against LoR-VP over {len(res['settings']['seeds'])} "
            f"seeds (points): " + "; ".join(parts) + ".")


HEADLINE_REFERENCES = ("lorvp", "smm", "none", "vp")
"""The methods LoRSP is set against in the headline, in this order, where the table has their rows."""


def headline(res: dict[str, Any]) -> list[str]:
    """One line per dataset: LoRSP against LoR-VP, SMM, the linear probe and VP, with its sparsity."""
    lines = []
    for dataset, by_spec in res["table"].items():
        methods = first_specs(by_spec)
        if "lorsp" not in methods or not any(ref in methods for ref in HEADLINE_REFERENCES):
            continue
        lo = methods["lorsp"][1]
        parts = []
        for ref in HEADLINE_REFERENCES:
            if ref in methods:
                v, d = verdict(lo, methods[ref][1])
                parts.append(f"{v} against {method_label(methods[ref][0])} ({d:+.1f} points)")
        lines.append(f"- **{dataset}**: LoRSP {100 * lo['test_accuracy_mean']:.1f} +- "
                     f"{100 * lo['test_accuracy_std']:.1f} with {100 * lo['prompt_sparsity_mean']:.0f}% exactly-zero "
                     f"prompt pixels; " + "; ".join(parts) + ".")
    return lines


def tries_markdown(tries: dict[str, Any], main_table: dict[str, Any] | None,
                   runs: dict[tuple[str, str], list[dict]]) -> str:
    """One row per LoRSP try of ``tries`` (a baselines table): its mean val and test accuracy over the table's
    data sets, its lowest zero share and unique-mask share (any seed), and on how many of those data sets it is
    on par (wins or ties, :func:`verdict`) with each of :data:`ON_PAR_TARGETS` in ``main_table``."""
    datasets = list(tries["table"])
    main_rows = {d: first_specs(main_table["table"].get(d, {}) if main_table else {}) for d in datasets}
    refs = [ref for ref in ON_PAR_TARGETS if all(ref in main_rows[d] for d in datasets)]
    header = ["try", "mean val (%)", "mean test (%)", "lowest zeros (%)", "lowest unique masks (%)"] + [
        f"on par with {method_label(main_rows[datasets[0]][ref][0])}" for ref in refs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for spec in tries["settings"]["methods"]:
        cells = [tries["table"][d][spec] for d in datasets if spec in tries["table"][d]]
        if len(cells) < len(datasets):
            continue
        unique = [r.get("prompt_unique_mask_share") for d in datasets for r in runs.get((d, spec), [])]
        low_unique = "n/a" if not unique or None in unique else f"{100 * min(unique):.1f}"
        row = [method_label(spec), f"{100 * sum(c['val_accuracy_mean'] for c in cells) / len(cells):.1f}",
               f"{100 * sum(c['test_accuracy_mean'] for c in cells) / len(cells):.1f}",
               f"{100 * min(c['prompt_sparsity_mean'] for c in cells):.1f}", low_unique]
        row += [f"{sum(on_par(c, main_rows[d][ref][1]) for d, c in zip(datasets, cells))} of {len(datasets)}"
                for ref in refs]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- sections
def extra_headline(robustness: list[dict], deployment: dict | None) -> list[str]:
    """Robustness and deployment in one line each, for the README."""
    lines = []
    for r in robustness:
        for dataset, by_spec in r["table"].items():
            drops = ", ".join(f"{design_label(spec, v)} {100 * v['mean_drop']['mean']:.1f}" for spec, v in by_spec.items())
            lines.append(f"- **robustness** ({dataset}, noise/blur/contrast x 3 severities): mean accuracy drop in "
                         f"points: {drops}.")
    if deployment:
        rows = {r["method"].partition(":")[0]: r for r in deployment["rows"]}
        lo, ref = rows.get("lorsp"), rows.get("lorvp")
        if lo and ref:
            design = " of the earlier band-gated design" if ran_band(lo["method"], lo) else ""
            lines.append(f"- **deployment** ({deployment['settings']['dataset']}): the generator{design} on the Loihi model "
                         f"spends {lo['generator_nj']['fixed']:.1f} nJ per image ({lo['synops_per_image']['fixed']:.0f} "
                         f"synaptic ops); end to end with an int8 backbone LoRSP needs "
                         f"{lo['total_nj']['int8'] / 1e3:.2f} uJ per image against LoR-VP's "
                         f"{ref['total_nj']['int8'] / 1e3:.2f} uJ ({lo['total_nj']['int8'] / ref['total_nj']['int8']:.3f}x); "
                         f"co-simulation agreement {100 * lo['agreement']['fixed-fp32']:.1f}% (fixed, fp32).")
    return lines


def reproduce_baselines(a: dict[str, Any]) -> str:
    """The baselines.py command of a table's ``settings``."""
    extra = f" --prompt-lr {a['prompt_lr']:g}" if a.get("prompt_lr") else ""
    if a.get("backbone", "efficientnet_lite0") != "efficientnet_lite0":
        extra += f" --backbone {a['backbone']}"
    if a.get("out", "runs/baselines") != "runs/baselines":
        extra += f" --out {a['out']}"
    return (f"`python benchmarks/baselines.py --datasets {' '.join(a['datasets'])} --methods {' '.join(a['methods'])} "
            f"--seeds {' '.join(map(str, a['seeds']))}{extra} --table-name {a['table_name']}`")


# --------------------------------------------------------------------------- per-instance columns
INSTANCE_COLUMNS = (("prompt_unique_mask_share", "unique zero masks (%)"),
                    ("prompt_mask_flip_share", "zero-mask flips (%)"))
"""The per-instance figures of each run's metrics.json (issue 16) and their accuracy-table columns."""

INSTANCE_NOTE = (f"Unique zero masks: the share of the first {INSTANCE_IMAGES} test images whose zero mask (the "
                 "pixels where the prompt is exactly zero) no other of them has; zero-mask flips: the mean share "
                 "of pixels whose zero/non-zero state differs between two of those images "
                 f"({FLIP_PAIRS:,} seeded pairs). A prompt shared by all images scores 0 on both. Means over "
                 "seeds; n/a where a run predates these figures.")


def instance_means(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """The mean over seeds of each per-instance figure of the runs' metrics.json; None (shown "n/a")
    unless every run has it: runs from before the figures, or whose metrics.json is missing ({})."""
    means: dict[str, float | None] = {}
    for key, _ in INSTANCE_COLUMNS:
        values = [r.get(key) for r in runs]
        means[key] = statistics.mean(values) if values and all(v is not None for v in values) else None
    return means


def seed_metrics(table: dict[str, dict[str, Any]], settings: dict[str, Any],
                 collected: Path | None = None) -> dict[tuple[str, str], list[dict]]:
    """(dataset, method spec) -> the metrics.json of each seed's run ({} where it is missing): the
    collected copies under ``collected`` (results_data's ``seeds/<table stem>/``), else the runs' own."""
    found: dict[tuple[str, str], list[dict]] = {}
    for dataset, by_spec in table.items():
        for spec, summary in by_spec.items():
            paths = [seed_file(collected, dataset, spec, seed) if collected else
                     run_dir(summary, settings, dataset, spec, seed) / "metrics.json"
                     for seed in summary.get("seeds", [])]
            found[(dataset, spec)] = [load(str(path)) or {} for path in paths]
    return found


def table_runs(path: str, res: dict[str, Any]) -> dict[tuple[str, str], list[dict]]:
    """:func:`seed_metrics` of the accuracy table ``res`` read from ``path``: collected seeds if it was collected."""
    return seed_metrics(res["table"], res["settings"], collected_runs(Path(path)))


def accuracy_markdown(table: dict[str, dict[str, Any]], settings: dict[str, Any],
                      runs: dict[tuple[str, str], list[dict]] | None = None) -> str:
    """benchmarks/baselines.py's accuracy table with the per-instance columns added, each the mean over
    the seeds' metrics.json in ``runs`` (read from the runs' folders when None); "n/a" where absent. A table
    assembled from several (results_union) gets a column naming each row's source (1 = the first)."""
    runs = seed_metrics(table, settings) if runs is None else runs
    rows = [(dataset, spec, cell) for dataset, by_spec in table.items() for spec, cell in by_spec.items()]
    cells = [instance_means(runs.get((dataset, spec), [])) for dataset, spec, _ in rows]
    sources = all("source" in cell for _, _, cell in rows)
    lines = baselines_markdown(table, argparse.Namespace(**settings)).split("\n")
    header = next(k for k, line in enumerate(lines) if line.startswith("| dataset | method |"))
    lines[header] += " " + " | ".join(label for _, label in INSTANCE_COLUMNS) + " |" + (" source |" if sources else "")
    lines[header + 1] += "---|" * (len(INSTANCE_COLUMNS) + sources)
    end = header + 2 + len(cells)
    if any(not line.startswith("| ") for line in lines[header + 2:end]) or lines[end].startswith("| "):
        raise ValueError("the accuracy table's rows do not match its cells")  # baselines.markdown changed
    for k, means in enumerate(cells):
        lines[header + 2 + k] += " " + " | ".join("n/a" if means[key] is None else f"{100 * means[key]:.1f}"
                                                  for key, _ in INSTANCE_COLUMNS) + " |"
        if sources:
            lines[header + 2 + k] += f" {rows[k][2]['source'] + 1} |"
    lines[end:end] = ["", INSTANCE_NOTE]
    return "\n".join(lines)


def stale_line(res: dict[str, Any]) -> str | None:
    """The accuracy table's line on the runs it reused from another commit (``--reuse-stale``), or None."""
    stale = res.get("reused_stale") or []
    total = sum(len(cell["seeds"]) for by_spec in res["table"].values() for cell in by_spec.values())
    return stale_note(stale, total, res["git_commit"]) if stale else None


BAND_NOTE = ("the earlier band-gated design (`gate=band`: band gates from an untrained spiking relay), LoRSP's "
             "default before the trained pixel-gated generator; not today's default")


def band_specs(runs: dict[tuple[str, str], list[dict]]) -> list[str]:
    """The LoRSP specs whose runs' metrics.json all record ``gate: band`` (the earlier design), in order; not
    the dense twin (every gate held open: no gating at all, whatever the gate mode)."""
    return list(dict.fromkeys(spec for (_, spec), seeds in runs.items()
                              if spec.startswith("lorsp") and variant(spec) != "twin" and seeds
                              and all(r.get("gate") == "band" for r in seeds)))


def ran_band(spec: str, entry: dict[str, Any]) -> bool:
    """Whether a robustness or deployment entry of a LoRSP spec ran band gating: the gate its JSON records, or band
    where the JSON records none (those benchmarks began recording it when pixel gating became the default, so
    every entry without one is older)."""
    return parse_method(spec)[0] == "lorsp" and entry.get("gate", "band") == "band"


def lr_select_design(lr_select: dict[str, Any]) -> str:
    """The sentence that says LoRSP's rows of the learning-rate choice ran band gating, where they did (the gate
    their points record; none recorded: the JSON predates the record, :func:`ran_band`), or ""."""
    band = any(ran_band(spec, point) for spec, row in lr_select["table"].items() for point in row.get("points", [])
               if not point.get("diverged"))
    return (f" LoRSP's rows here are {BAND_NOTE}; today's default keeps the rate chosen for it (0.1) without a "
            "choice of its own on val yet.") if band else ""


def design_label(spec: str, entry: dict[str, Any]) -> str:
    """``method_label(spec)``, said to be the earlier band-gated design where it ran it (:func:`ran_band`)."""
    return method_label(spec) + (" (the earlier band-gated design)" if ran_band(spec, entry) else "")


def band_title(title: str, res: dict[str, Any], runs: dict[tuple[str, str], list[dict]]) -> str:
    """``title``, marked as the earlier band-gated design when every LoRSP row of ``res`` ran it."""
    lorsp = {spec for by_spec in res["table"].values() for spec in by_spec
             if spec.startswith("lorsp") and variant(spec) != "twin"}
    return f"{title}: earlier band-gated design" if lorsp and lorsp <= set(band_specs(runs)) else title


def sources_lines(res: dict[str, Any], command: Callable[[dict[str, Any]], str],
                  rows_of: Callable[[int], str] = lambda k: "", single: str | None = None) -> list[str]:
    """The provenance of a table: ``single`` (by default its machine, commit and command), or for a table
    assembled from several (results_union) each source's command, commit and machine, numbered as the rows'
    source column, and the rows taken out before assembling."""
    if "sources" not in res:
        return [single or f"Machine: {res['machine']}; assembled at commit {res['git_commit'][:12]} (each run "
                f"records its own commit in its metrics.json). Reproduce: {command(res['settings'])}.", ""]
    lines = [f"Assembled by `python benchmarks/results_data.py` from {len(res['sources'])} benchmark tables of one "
             "protocol (each run records its own commit in its metrics.json); each row's source, as numbered here. "
             "Reproduce:", ""]
    for k, src in enumerate(res["sources"]):
        stale = src.get("reused_stale") or []
        lines.append(f"{k + 1}. {command(src['settings'])} (machine: {src.get('machine', 'unknown')}; commit "
                     f"{src.get('git_commit', 'unknown')[:12]}{rows_of(k)}"
                     + (f"; {len(stale)} runs reused from other commits (reused_stale in the JSON)" if stale else "")
                     + ")")
    dropped: dict[tuple[str, str], int] = {}
    for d in res.get("dropped", []):
        dropped[(d["input"], d["method"])] = dropped.get((d["input"], d["method"]), 0) + 1
    if dropped:
        lines += ["", "Taken out before assembling (`--drop-method`): " + "; ".join(
            f"{method} of {path} ({n} rows)" for (path, method), n in dropped.items()) + "."]
    return lines + [""]


def baselines_section(res: dict, title: str, runs: dict[tuple[str, str], list[dict]], figure: str | None = None,
                      note: str | None = None) -> list[str]:
    """A ``## title`` section of the baselines table ``res``: provenance, command, ``note``, ``figure``, the table;
    marked where its LoRSP rows ran the earlier band-gated design (their metrics.json say so)."""
    lines = [f"## {band_title(title, res, runs)}", ""] + sources_lines(res, reproduce_baselines)
    if (stale := stale_line(res)) is not None:
        lines += [stale, ""]
    if band := band_specs(runs):
        lines += [f"LoRSP rows of {BAND_NOTE}: " + ", ".join(method_label(spec) for spec in band) + ".", ""]
    if note:
        lines += [note, ""]
    if figure:
        lines += [f"![accuracy against trainable prompt parameters]({figure})", ""]
    return lines + [accuracy_markdown(res["table"], res["settings"], runs)]


def reproduce_diagnostics(d: dict[str, Any]) -> str:
    """The prompt_diagnostics.py command of a diagnostics table's ``settings``."""
    return (f"`python benchmarks/prompt_diagnostics.py --runs {d['runs']} --datasets {' '.join(d['datasets'])} --methods "
            f"{' '.join(d['methods'])} --seeds {' '.join(map(str, d['seeds']))} --limit-test {d['limit_test']}`")


def diagnostics_section(diagnostics: dict[str, Any]) -> list[str]:
    """The diagnostics table (one or assembled from several), its commands and what each variant means."""
    def rows_of(k: int) -> str:
        methods = dict.fromkeys(r["method"] for r in diagnostics["rows"] if r.get("source") == k)
        return f"; rows of {', '.join(methods)}"

    return (["## Does the prompt help, and does its per-image part (diagnostics)", ""]
            + sources_lines(diagnostics, reproduce_diagnostics, rows_of,
                            f"Machine: {diagnostics['machine']}. Reproduce: "
                            f"{reproduce_diagnostics(diagnostics['settings'])}.")
            + ["Test accuracy (%) of each trained run with its own head: its own prompt, no prompt, another "
               "test image's prompt (a seeded permutation that moves every image), the mean prompt over the "
               "scored images and, for LoRSP, every gate open and the generator reset to its start. A static "
               "prompt scores the same with own, other and mean (docs/method.md).", "",
               diagnostics_markdown(diagnostics["rows"])])


PARAM_COMMAND = ("python benchmarks/baselines.py --datasets fashion-mnist mnist-5k animal-shape opencv-digits "
                 "sklearn-digits --seeds 0 --methods lorvp:prompt-lr=0.2,rank=1 lorvp:prompt-lr=0.2,rank=2 "
                 "lorvp:prompt-lr=0.2,rank=4 lorvp:prompt-lr=0.2,rank=8 lorvp:prompt-lr=0.2,rank=16 "
                 "lorsp:prompt-lr=0.1,rank=2 lorsp:prompt-lr=0.1,rank=4 lorsp:prompt-lr=0.1,rank=8 --out runs/main "
                 "--table-name param-figure-seed0")
"""How the parameter table is made (the Makefile's results target runs it)."""


def param_section(param_table: dict[str, Any], figure: Path, figure_rel: str) -> list[str]:
    """Test accuracy against trained prompt parameters, LoR-VP at its ranks and LoRSP at its sizes: the
    figure, each point, and on which data sets LoRSP's curve is on or above LoR-VP's."""
    points = {d: param_points(b) for d, b in param_table["table"].items()}
    results_plots.param_curve(points, figure)
    above = [d for d, p in points.items() if p["lorsp"] and p["lorvp"] and on_or_above(p["lorsp"], p["lorvp"])]
    lines = ["## Accuracy against trained prompt parameters", ""]
    lines += sources_lines(param_table, reproduce_baselines)
    lines += [f"![test accuracy against trained prompt parameters]({figure_rel})", "",
              f"{CURVE_RULE}. With the points below, on or above: {', '.join(above) or 'no data set'} (of "
              f"{len(points)}; the Targets say whether the figure has the points the target needs).", "",
              "| dataset | method | trained prompt parameters | test accuracy (%) | seeds |", "|---|---|---|---|---|"]
    for dataset, by_spec in param_table["table"].items():
        shown = [(spec, cell) for spec, cell in by_spec.items()
                 if spec.partition(":")[0] in ("lorvp", "lorsp") and variant(spec) is None]
        for spec, cell in sorted(shown, key=lambda kv: (kv[0].partition(":")[0], kv[1]["params"]["prompt"])):
            lines.append(f"| {dataset} | {method_label(spec)} | {cell['params']['prompt']:,} | "
                         f"{100 * cell['test_accuracy_mean']:.1f} +- {100 * cell['test_accuracy_std']:.1f} | "
                         f"{', '.join(map(str, cell.get('seeds', [])))} |")
    return lines + [""]


def sweep_section(sw: dict, figure: str) -> list[str]:
    s = sw["settings"]
    lines = ["## Sparsity against accuracy", "",
             f"LoRSP on {s['dataset']} (seed {s['seed']}) with `--{s['option']}` swept from `{s['method']}`; LoR-VP's "
             f"mean +- std over seeds {sw['lorvp']['seeds']} as the line. Machine: {sw['machine']}. Reproduce: "
             f"`python benchmarks/sparsity_sweep.py --dataset {s['dataset']} --option {s['option']} --values "
             f"{' '.join(format(v, 'g') for v in s['values'])} --method {s['method']}"
             + (f" --out {s['out']}" if s.get("out", "runs/sweep") != "runs/sweep" else "")
             + (f" --baselines-out {s['baselines_out']}" if s.get("baselines_out", "runs/baselines") != "runs/baselines"
                else "")
             + (f" --lorvp-method {s['lorvp_method']}" if s.get("lorvp_method", "lorvp") != "lorvp" else "") + "`.", "",
             f"![accuracy against prompt sparsity]({figure})", "",
             f"| {s['option']} | zero prompt pixels (%) | firing rate | val accuracy (%) | test accuracy (%) |",
             "|---|---|---|---|---|"]
    for p in sw["points"]:
        lines.append(f"| {p['value']:g} | {100 * p['prompt_sparsity']:.1f} | {p['firing_rate']:.3f} | "
                     f"{100 * p['val_accuracy']:.1f} | {100 * p['test_accuracy']:.1f} |")
    lines.append(f"| LoR-VP (dense) | 0.0 | - | - | {100 * sw['lorvp']['mean']:.1f} +- {100 * sw['lorvp']['std']:.1f} |")
    return lines + [""]


def robustness_section(results: list[dict], figure: str) -> list[str]:
    band = any(ran_band(spec, v) for r in results for by_spec in r["table"].values() for spec, v in by_spec.items())
    lines = ["## Robustness to corrupted test images" + (": earlier band-gated design" if band else ""), "",
             *([f"LoRSP's rows here measure {BAND_NOTE}.", ""] if band else []),
             f"Machine: {results[0]['machine']}. Reproduce: "
             + "; ".join(f"`python benchmarks/robustness.py --runs {r['settings']['runs']} --datasets "
                         f"{' '.join(r['settings']['datasets'])} --methods {' '.join(r['settings']['methods'])} "
                         f"--seeds {' '.join(map(str, r['settings']['seeds']))} --limit {r['settings']['limit']}`"
                         for r in results)
             + ". Corruptions: lorsp/data/corruptions.py (ImageNet-C's severities, Hendrycks & Dietterich 2019).", "",
             f"![accuracy drop under corruption]({figure})", ""]
    for r in results:
        lines += [robustness_markdown(r)]
    return lines


def few_shot_section(fs: dict) -> list[str]:
    s = fs["settings"]
    return ["## Few-shot", "", f"Machine: {fs['machine']}. Reproduce: `python benchmarks/few_shot.py --datasets "
            f"{' '.join(s['datasets'])} --methods {' '.join(s['methods'])} --shots {' '.join(map(str, s['shots']))} "
            f"--steps {s['steps']} --limit-val {s['limit_val']}"
            + (f" --prompt-lr {s['prompt_lr']:g}" if s.get("prompt_lr") else "") + f" --out {s['out']}`.", "",
            few_shot_markdown(fs)]


def deployment_section(dep: dict, figure: str) -> list[str]:
    s = dep["settings"]
    band = any(ran_band(r["method"], r) for r in dep["rows"])
    return ["## Deployment: chip, host and accelerator, per image" + (": earlier band-gated design" if band else ""), "",
            *([f"LoRSP's row here measures {BAND_NOTE}; today's default deploys as a pixel-gates bundle "
               "(docs/loihi.md, \"Pixel-gated bundles\")."] if band else []),
            f"Machine: {dep['machine']}. Reproduce: `python benchmarks/deployment.py --runs {s['runs']} --dataset "
            f"{s['dataset']} --seed {s['seed']} --limit {s['limit']} --out {s['out']}`.", "",
            f"![energy per image per method]({figure})", "", deployment_markdown(dep)]


def energy_sweep_section(sweep: dict, figure: str) -> list[str]:
    """Test accuracy against the generator's energy on the Loihi table, with the dense int8 cost beside."""
    s = sweep["settings"]
    return ["## Energy against accuracy: earlier band-gated design", "",
            f"Measurements of {BAND_NOTE}. The relay noise is a setting of the band relay. The gates of today's "
            "default: the Targets' energy line.", "",
            f"Machine: {sweep['machine']}; commit {sweep['git_commit'][:12]}. Reproduce: `python benchmarks/energy_sweep.py "
            f"--dataset {s['dataset']} --seed {s['seed']} --time-steps {' '.join(map(str, s['time_steps']))} "
            f"--relay-noise {' '.join(format(v, 'g') for v in s['relay_noise'])} --lorsp-rank {s['lorsp_rank']} "
            f"--prompt-lr {s['prompt_lr']:g} --samples {s['samples']}`. Each point is one LoRSP run of the protocol; the chip is the fixed-point "
            "simulation of its exported bundle (Davies et al. 2018's Loihi table); the dense line is the same "
            "network run densely in int8 (Horowitz 2014). Where the chip costs more than the dense line, the "
            "spiking generator saves no energy.", "", f"![test accuracy against generator energy]({figure})", "",
            energy_sweep.markdown(sweep), ""]


STACK_PACKAGES = ("python", "torch", "numpy", "onnxruntime", "lava-nc")


def speed_stacks(speed: dict[str, dict | None]) -> str:
    """The package versions each benchmark ran on (from its JSON), the benchmarks of each stack named."""
    by_stack: dict[str, list[str]] = {}
    for key, data in speed.items():
        found = (data or {}).get("versions") or {}
        label = ", ".join(f"{name} {found[name]}" for name in STACK_PACKAGES
                          if found.get(name) not in (None, "not installed"))
        if label:
            by_stack.setdefault(label, []).append(key)
    return "; ".join(f"{label} ({', '.join(keys)})" for label, keys in by_stack.items())


def speed_section(speed: dict[str, dict | None], machine: str) -> list[str]:
    """Every performance ratio of the benchmarks, one table."""
    rows = []
    ts, ol, ns, fs, ct = (speed.get(k) for k in ("train", "onnx", "onnx_nospin", "fastsim", "cosim"))
    if ts:
        r = ts["images_per_s"]
        if "step_time_vs_lorvp" in r.get("lorsp", {}):
            spread = r["lorsp"].get("step_time_vs_lorvp_range")
            measured = f"{r['lorsp']['step_time_vs_lorvp']:.3f}x" + (
                f" (rounds {spread[0]:.2f}-{spread[1]:.2f})" if spread else "")
            met = "met" if r["lorsp"]["step_time_vs_lorvp"] <= TARGET_STEP_RATIO else "missed"
            rows.append(("LoRSP training step / LoR-VP step (median of rounds)", measured,
                         f"<= {TARGET_STEP_RATIO}x: {met}", "`python benchmarks/train_speed.py`"))
        for m, v in r.items():
            rows.append((f"training images/s with / without the allocator fix ({m})", f"{v['fix_gain']:.2f}x",
                         "", "`python benchmarks/train_speed.py`"))
    for data, flag in ((ol, ""), (ns, " --no-spinning")):
        if data:
            for name, t in data["targets"].items():
                rows.append((name + (" (ORT workers sleep between runs)" if flag else ""), f"{t['measured']:.3f}",
                             "met" if t["met"] else "missed", f"`python benchmarks/onnx_latency.py{flag}`"))
    if fs:
        for mode in ("float", "fixed"):
            c = fs["compare"][mode]
            rows.append((f"fast simulator / Lava, {mode} (images/s, identical spikes: {c['identical_spikes']})",
                         f"{c['ratio_all']:.0f}x", "", "`python benchmarks/fastsim.py --samples 256`"))
    if ct:
        rows.append(("co-simulation / backbone-only onnxruntime (images/s, fast backend)", f"{ct['ratio_best']:.3f}x",
                     f">= 0.8x: {'met' if ct['target_met'] else 'missed'}", "`python benchmarks/cosim_throughput.py`"))
    if not rows:
        return []
    commits = sorted({d["git_commit"][:12] for d in speed.values() if d and d.get("git_commit")})
    at = f"; measured at commit {', '.join(commits)}" if commits else ""
    stack = speed_stacks(speed)
    lines = ["## Speed", "", f"Machine: {machine}{at}." + (f" Stack: {stack}." if stack else "") +
             " Ratios are within one run of each benchmark (docs/speed.md, docs/onnx.md, docs/fastsim.md say how "
             "each is measured; docs/install.md, which environment runs what).", "",
             "| ratio | measured | target | command |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return lines + [""]


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the README markers replaced by ``block``."""
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        fail(f"README.md has no {README_START} ... {README_END} block")
    return pattern.sub(lambda _: f"{README_START}\n{block}\n{README_END}", text)


def replace_section(text: str, section: list[str]) -> str:
    """``text`` with its section of the same ``## `` heading as ``section`` (up to the next one) replaced."""
    heading = section[0]
    pattern = re.compile("^" + re.escape(heading) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    if not pattern.search(text):
        fail(f"no '{heading}' section to replace")
    return pattern.sub(lambda _: "\n".join(section) + "\n", text, count=1)


def load_speed(bench: Path) -> dict[str, dict | None]:
    """The JSON of ``make bench`` in ``bench``, by benchmark (None where missing)."""
    return {key: load(str(bench / f"{name}.json")) for key, name in results_data.SPEED_FILES.items()}


def speed_machine(speed: dict[str, dict | None]) -> str:
    return next((d["machine"] for d in speed.values() if d and "machine" in d), "unknown")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(results_data.DATA),
                   help="the collected data folder (benchmarks/results_data.py) the inputs not named are read from")
    for dest, (_, default) in results_data.SINGLE.items():
        p.add_argument("--" + dest.replace("_", "-"), dest=dest, help=f"instead of --data's (e.g. {default})")
    p.add_argument("--other-backbones", nargs="*",
                   help="accuracy tables of other backbones (baselines.py JSON), one section each")
    p.add_argument("--robustness", help="glob")
    p.add_argument("--speed-dir")
    p.add_argument("--example-prompts", default=str(ROOT / "docs" / "figures" / "example_prompts.png"),
                   help="benchmarks/example_prompts.py's figure: its section appears when it exists")
    p.add_argument("--figures", default="docs/figures")
    p.add_argument("--out", default="docs/results.md")
    p.add_argument("--readme", default="README.md", help="its results block is rewritten ('' to leave it)")
    p.add_argument("--only-speed", action="store_true",
                   help="rewrite only the Speed section of an existing --out from --speed-dir (after make bench)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, each input not named taken from the ``--data`` folder."""
    args = parser().parse_args(argv)
    inputs = results_data.data_inputs(Path(args.data))
    if not Path(args.data).is_dir() and all(getattr(args, dest) is None for dest in inputs):
        fail(f"{args.data} does not exist: collect it first (python benchmarks/results_data.py) or name the inputs")
    for dest, path in inputs.items():
        if getattr(args, dest) is None:
            setattr(args, dest, path)
    return args


def only_speed(args: argparse.Namespace) -> None:
    """Rewrite the Speed section of an existing ``args.out`` from ``args.speed_dir``."""
    speed = load_speed(Path(args.speed_dir))
    section = speed_section(speed, speed_machine(speed))
    if not section:
        fail(f"no benchmark JSON in {args.speed_dir}; run make bench first")
    out = Path(args.out)
    if not out.exists():
        fail(f"{out} does not exist; run without --only-speed to write it whole")
    new_text = replace_section(out.read_text(), section)
    atomic_write(out, lambda tmp: tmp.write_text(new_text))
    print(f"rewrote the Speed section of {out}")


def example_prompts_figure(source: Path, figures: Path) -> bool:
    """Whether the example-prompts figure exists; copied into ``figures`` when it lies elsewhere."""
    if not source.exists():
        return False
    target = figures / source.name
    if not target.exists() or not target.samefile(source):
        atomic_write(target, lambda tmp: tmp.write_bytes(source.read_bytes()))
    return True


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.only_speed:
        only_speed(args)
        return
    figures = Path(args.figures)
    rel = lambda name: str((figures / name).relative_to(Path(args.out).parent))  # noqa: E731
    main_table = load(args.baselines)
    diagnostics, param_table = load(args.diagnostics), load(args.param_figure)
    other_backbones = [(path, t) for path, t in ((path, load(path)) for path in args.other_backbones) if t]
    backbone_lines = [line for line in (against_lorvp(t, bool(band_specs(table_runs(path, t))))
                                        for path, t in other_backbones) if line]
    robustness = [json.loads(Path(f).read_text()) for f in sorted(glob.glob(args.robustness))]
    few_shot, deployment = load(args.few_shot), load(args.deployment)
    speed = load_speed(Path(args.speed_dir))
    lines = ["# Results", "", "Generated by `python benchmarks/results_doc.py` from the JSON the benchmarks "
             "write; every figure below comes from the command named beside it. Protocol: docs/protocol.md. "
             "Verdicts: a tie when the difference of the means is within the larger standard deviation over seeds.",
             ""]
    missing = []
    if main_table:
        main_runs = table_runs(args.baselines, main_table)
        lines += ["## Headline", ""] + headline(main_table) + backbone_lines + [""]
        targets = targets_section(main_table, main_runs, diagnostics, param_table, load(args.pixel_energy),
                                  load(args.step_cost))
        if targets and (band := band_specs(main_runs)) and first_specs(
                next(iter(main_table["table"].values()))).get("lorsp", ("",))[0] in band:
            targets[2] += f" The LoRSP rows measured here are {BAND_NOTE}."
        lines += targets
        results_plots.accuracy_vs_params(main_table["table"], figures / "accuracy_params.png")
        lines += baselines_section(main_table, "Accuracy, parameters and sparsity", main_runs,
                                   rel("accuracy_params.png"))
    else:
        missing.append(("accuracy table", "python benchmarks/baselines.py"))
    lr_select = load(args.lr_select)
    if lr_select:
        g = lr_select["settings"]
        lines += ["## Choosing the prompt learning rate (on val)", "",
                  f"Machine: {lr_select['machine']}. Reproduce: `python benchmarks/lr_select.py --dataset {g['dataset']} "
                  f"--seed {g['seed']} --grid {' '.join(g['grid'])}`. The head keeps lr {g['lr']}; the prompt's "
                  "image parameters get their own rate (docs/protocol.md). LoRSP's defaults (the rows without "
                  "options) are the best val accuracy among its rows with at least 50% zero prompt pixels "
                  "(docs/method.md)." + lr_select_design(lr_select), "", lr_select_markdown(lr_select)]
    target_select = load(args.target_select)
    if target_select:
        lines += baselines_section(target_select, "Choosing LoRSP's sparsity target (on val, 3 seeds)",
                                   table_runs(args.target_select, target_select), note="The target kept is the best mean val accuracy of these rows; every row "
                                        "has at least 50% zero prompt pixels (docs/method.md).")
    if param_table:
        lines += param_section(param_table, figures / "param_curve.png", rel("param_curve.png"))
    else:
        missing.append(("accuracy against trained prompt parameters", PARAM_COMMAND))
    for path, table in other_backbones:
        runs = table_runs(path, table)
        lines += baselines_section(table, f"Accuracy with {table['settings']['backbone']}", runs)
        if band_specs(runs):
            missing.append((f"today's default LoRSP on {table['settings']['backbone']} (its table has the earlier "
                            "band-gated design's LoRSP rows only)",
                            f"python benchmarks/baselines.py --backbone {table['settings']['backbone']} --methods "
                            f"{' '.join(table['settings']['methods'])} --out {table['settings']['out']} --table-name "
                            f"{table['settings']['table_name']}"))
    if not other_backbones:
        missing.append(("EfficientNet-Lite2 table", "python benchmarks/baselines.py --backbone efficientnet_lite2 "
                        "--out runs/baselines-lite2"))
    ablation = load(args.ablation)
    if ablation:
        lines += baselines_section(ablation, "Ablation", table_runs(args.ablation, ablation))
    digit_tries = load(args.digit_tries)
    if digit_tries:
        tries_runs = table_runs(args.digit_tries, digit_tries)
        lines += baselines_section(
            digit_tries, "Tries on the digit data sets (3 seeds)", tries_runs,
            note="The data sets where LoRSP is behind the dense prompts; each row is one try of docs/method.md "
                 "(\"What was tried for the digit data sets\"), at the default prompt lr where the row names no "
                 "other, chosen or rejected on mean val. Over the data sets of this table (on par: wins or ties "
                 "against the Lite0 accuracy table's rows):\n\n" + tries_markdown(digit_tries, main_table, tries_runs))
    sweep = load(args.sweep)
    if sweep:
        lines += sweep_section(sweep, rel("sparsity_accuracy.png"))
    if diagnostics:
        lines += diagnostics_section(diagnostics)
    gates = load(args.gate_usage)
    if gates:
        g = gates["settings"]
        lines += ["## How instance-specific are LoRSP's gates: earlier band-gated design", "",
                  f"Measurements of {BAND_NOTE}.", "", f"Machine: {gates['machine']}. Reproduce: `python benchmarks/gate_usage.py --runs {g['runs']} "
                  f"--datasets {' '.join(g['datasets'])} --method {g['method']} --limit {g['limit']}`.", "",
                  gate_usage_markdown(gates)]
    if robustness:
        results_plots.robustness_drop(robustness, figures / "robustness.png")
        lines += robustness_section(robustness, rel("robustness.png"))
    else:
        missing.append(("robustness", "python benchmarks/robustness.py"))
    if few_shot:
        lines += few_shot_section(few_shot)
    else:
        missing.append(("few-shot", "python benchmarks/few_shot.py"))
    if deployment:
        results_plots.energy_per_method(deployment["rows"], figures / "energy_per_method.png",
                                        f"{deployment['settings']['dataset']}: energy per image")
        lines += deployment_section(deployment, rel("energy_per_method.png"))
    else:
        missing.append(("deployment", "python benchmarks/deployment.py"))
    sweep_energy = load(args.energy_sweep)
    if sweep_energy:
        energy_sweep.plot(sweep_energy["points"], figures / "energy_sweep.png", energy_sweep.title(sweep_energy))
        lines += energy_sweep_section(sweep_energy, rel("energy_sweep.png"))
    else:
        missing.append(("energy against accuracy", "python benchmarks/energy_sweep.py"))
    if example_prompts_figure(Path(args.example_prompts), figures):
        lines += ["## Example prompts: earlier band-gated design", "", f"Prompts of {BAND_NOTE}, beside LoR-VP's. "
                  "Reproduce: `python benchmarks/example_prompts.py` (the seed-0 runs of the band-gated LoRSP).", "", f"![LoR-VP and LoRSP prompts]({rel('example_prompts.png')})", ""]
    lines += speed_section(speed, speed_machine(speed))
    if missing:
        lines += ["## Not in this document yet", "", "`make results` makes all of them (with the options of the "
                  "tables above); the scripts, one by one:", ""] + [f"- {what}: `{cmd}`" for what, cmd in missing] + [""]
    text = "\n".join(lines) + "\n"
    atomic_write(args.out, lambda tmp: tmp.write_text(text))
    print(f"wrote {args.out}")
    if args.readme and main_table:
        readme = Path(args.readme)
        block = "\n".join(headline(main_table) + backbone_lines + extra_headline(robustness, deployment)) + f"\n\nEverything else, with the commands: [{args.out}]({args.out})."
        new = replace_block(readme.read_text(), block)
        atomic_write(readme, lambda tmp: tmp.write_text(new))
        print(f"updated the results block of {readme}")


if __name__ == "__main__":
    main()
