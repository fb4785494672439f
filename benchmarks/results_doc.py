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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import energy_sweep, results_data, results_plots  # noqa: E402
from benchmarks.baselines import markdown as baselines_markdown, method_label, stale_note  # noqa: E402
from benchmarks.deployment import markdown as deployment_markdown  # noqa: E402
from benchmarks.few_shot import markdown as few_shot_markdown  # noqa: E402
from benchmarks.gate_usage import markdown as gate_usage_markdown  # noqa: E402
from benchmarks.prompt_diagnostics import markdown as diagnostics_markdown  # noqa: E402
from benchmarks.lr_select import markdown as lr_select_markdown  # noqa: E402
from benchmarks.output import fail  # noqa: E402
from benchmarks.results_data import collected_runs, run_dir, seed_file  # noqa: E402
from benchmarks.robustness import markdown as robustness_markdown  # noqa: E402
from benchmarks.train_speed import TARGET_STEP_RATIO  # noqa: E402
from lorsp.plumbing.fileio import atomic_write  # noqa: E402
from lorsp.metrics import FLIP_PAIRS, INSTANCE_IMAGES  # noqa: E402

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def load(path: str | None) -> dict | None:
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else None


# --------------------------------------------------------------------------- verdicts
def verdict(lorsp: dict[str, Any], other: dict[str, Any]) -> tuple[str, float]:
    """``("wins" | "ties" | "loses", difference in points)``: a tie when the difference of the
    means is within the larger of the two standard deviations over seeds."""
    diff = 100 * (lorsp["test_accuracy_mean"] - other["test_accuracy_mean"])
    noise = 100 * max(lorsp["test_accuracy_std"], other["test_accuracy_std"])
    return ("ties" if abs(diff) <= noise else "wins" if diff > 0 else "loses"), diff


def on_par(lorsp: dict[str, Any], other: dict[str, Any]) -> bool:
    """LoRSP wins or ties against ``other`` under :func:`verdict`."""
    return verdict(lorsp, other)[0] != "loses"


def first_specs(by_spec: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Method name -> (spec, summary) of its first row: ``vp:prompt-lr=20`` answers for ``vp``."""
    methods: dict[str, tuple[str, dict[str, Any]]] = {}
    for spec, summary in by_spec.items():
        methods.setdefault(spec.partition(":")[0], (spec, summary))
    return methods


def against_lorvp(res: dict[str, Any]) -> str | None:
    """One line for a whole accuracy table: the datasets where LoRSP wins, ties and loses against LoR-VP."""
    by_verdict: dict[str, list[str]] = {"wins": [], "ties": [], "loses": []}
    for dataset, by_spec in res["table"].items():
        methods = first_specs(by_spec)
        if "lorsp" in methods and "lorvp" in methods:
            v, d = verdict(methods["lorsp"][1], methods["lorvp"][1])
            by_verdict[v].append(f"{dataset} ({d:+.1f})")
    if not any(by_verdict.values()):
        return None
    parts = [f"{v} on {', '.join(where)}" for v, where in by_verdict.items() if where]
    return (f"- **{res['settings']['backbone']}**, LoRSP against LoR-VP over {len(res['settings']['seeds'])} "
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


# --------------------------------------------------------------------------- targets
UNIQUE_TARGET, FLIP_TARGET = 0.90, 0.10
"""Per instance: every seed's share of images with a zero mask of their own, and the mean over seeds of the
zero-mask flip share, at least these on every data set."""
SPARSITY_TARGET = 0.5
"""LoRSP's mean share of exactly-zero prompt pixels on every data set, at least."""
ON_PAR_TARGETS = {"lorvp": 4, "smm": 3}
"""On par (wins or ties under :func:`verdict`) with these methods on at least this many data sets."""
PROBE_MARGIN = 1.0
"""Never more than this many points below the linear probe."""


def met(ok: bool) -> str:
    return "met" if ok else "missed"


def lorsp_rows(res: dict[str, Any]) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """Dataset -> :func:`first_specs` of each dataset of the table that has a LoRSP row."""
    return {d: methods for d, methods in ((d, first_specs(b)) for d, b in res["table"].items()) if "lorsp" in methods}


def instance_target(res: dict[str, Any], runs: dict[tuple[str, str], list[dict]]) -> str | None:
    """The per-instance target line from the seeds' metrics.json of LoRSP's rows (None without such rows)."""
    rows = lorsp_rows(res)
    unique, flip = [], []
    for dataset, methods in rows.items():
        seeds = runs.get((dataset, methods["lorsp"][0]), [])
        shares = [r.get("prompt_unique_mask_share") for r in seeds]
        flips = [r.get("prompt_mask_flip_share") for r in seeds]
        if not seeds or None in shares + flips:
            return f"- **per instance**: not measured: LoRSP's runs on {dataset} lack the per-instance figures."
        unique.append((min(shares), dataset))
        flip.append((statistics.mean(flips), dataset))
    if not rows:
        return None
    (u, u_at), (f, f_at) = min(unique), min(flip)
    return (f"- **per instance**: {met(u >= UNIQUE_TARGET and f >= FLIP_TARGET)}. LoRSP's lowest share of images "
            f"with a zero mask of their own, over seeds and data sets, {100 * u:.1f}% ({u_at}; target >= "
            f"{100 * UNIQUE_TARGET:.0f}% on every seed); lowest mean zero-mask flip share {100 * f:.1f}% ({f_at}; "
            f"target >= {100 * FLIP_TARGET:.0f}%).")


def params_target(res: dict[str, Any]) -> str | None:
    """LoRSP's trainable prompt parameters (its most on any data set) against LoR-VP's (their fewest)."""
    pairs = [(m["lorsp"][1]["params"]["prompt"], m["lorvp"][1]["params"]["prompt"])
             for m in lorsp_rows(res).values() if "lorvp" in m]
    if not pairs:
        return None
    lo, ref = max(p[0] for p in pairs), min(p[1] for p in pairs)
    return (f"- **parameters**: {met(all(a <= b for a, b in pairs))}. LoRSP {lo:,} trainable prompt parameters, "
            f"LoR-VP {ref:,} (target: at most LoR-VP's).")


def sparsity_target(res: dict[str, Any]) -> str | None:
    """LoRSP's lowest mean share of exactly-zero prompt pixels over the data sets."""
    rows = lorsp_rows(res)
    if not rows:
        return None
    low, at = min((m["lorsp"][1].get("prompt_sparsity_mean") or 0.0, d) for d, m in rows.items())
    return (f"- **sparsity**: {met(low >= SPARSITY_TARGET)}. LoRSP's lowest mean share of exactly-zero prompt "
            f"pixels {100 * low:.1f}% ({at}; target >= {100 * SPARSITY_TARGET:.0f}% on every data set).")


def accuracy_target(res: dict[str, Any]) -> str | None:
    """LoRSP on par with LoR-VP and SMM on enough data sets, never far below the linear probe; None unless
    the table has rows of LoRSP, LoR-VP, SMM and the linear probe. Data sets without a method's row count
    as not on par with it (and, for the linear probe, as missed)."""
    rows = lorsp_rows(res)
    if not rows or any(all(ref not in m for m in rows.values()) for ref in (*ON_PAR_TARGETS, "none")):
        return None
    par_counts = {ref: sum(on_par(m["lorsp"][1], m[ref][1]) for m in rows.values() if ref in m)
                  for ref in ON_PAR_TARGETS}
    probe = [(verdict(m["lorsp"][1], m["none"][1])[1], dataset) for dataset, m in rows.items() if "none" in m]
    worst, at = min(probe)
    ok = (all(par_counts[ref] >= n for ref, n in ON_PAR_TARGETS.items()) and len(probe) == len(rows)
          and worst >= -PROBE_MARGIN)
    par = ", ".join(f"with {method_label(ref)} on {par_counts[ref]} of {len(rows)} data sets (target >= {n})"
                    for ref, n in ON_PAR_TARGETS.items())
    return (f"- **accuracy** ({res['settings']['backbone']}): {met(ok)}. LoRSP on par (wins or ties) {par}; "
            f"against the linear probe at worst {worst:+.1f} points ({at}; target >= {-PROBE_MARGIN:+.1f}).")


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


def targets_section(main_table: dict[str, Any], runs: dict[tuple[str, str], list[dict]],
                    other_backbones: list[dict[str, Any]]) -> list[str]:
    """LoRSP's targets, met or missed with the figures, from the main table (and the accuracy line of each
    other backbone's); [] when none of their rows exist."""
    lines = [line for line in (instance_target(main_table, runs), params_target(main_table),
                               sparsity_target(main_table), accuracy_target(main_table),
                               *map(accuracy_target, other_backbones)) if line]
    if not lines:
        return []
    return ["## Targets", "", "From the accuracy tables below: LoRSP's first row against each method's first row, "
            "per data set.", ""] + lines + [""]


# --------------------------------------------------------------------------- sections
def extra_headline(robustness: list[dict], deployment: dict | None) -> list[str]:
    """Robustness and deployment in one line each, for the README."""
    lines = []
    for r in robustness:
        for dataset, by_spec in r["table"].items():
            drops = ", ".join(f"{method_label(spec)} {100 * v['mean_drop']['mean']:.1f}" for spec, v in by_spec.items())
            lines.append(f"- **robustness** ({dataset}, noise/blur/contrast x 3 severities): mean accuracy drop in "
                         f"points: {drops}.")
    if deployment:
        rows = {r["method"].partition(":")[0]: r for r in deployment["rows"]}
        lo, ref = rows.get("lorsp"), rows.get("lorvp")
        if lo and ref:
            lines.append(f"- **deployment** ({deployment['settings']['dataset']}): the generator on the Loihi model "
                         f"spends {lo['generator_nj']['fixed']:.1f} nJ per image ({lo['synops_per_image']['fixed']:.0f} "
                         f"synaptic ops); end to end with an int8 backbone LoRSP needs "
                         f"{lo['total_nj']['int8'] / 1e3:.2f} uJ per image against LoR-VP's "
                         f"{ref['total_nj']['int8'] / 1e3:.2f} uJ ({lo['total_nj']['int8'] / ref['total_nj']['int8']:.3f}x); "
                         f"co-simulation agreement {100 * lo['agreement']['fixed-fp32']:.1f}% (fixed, fp32).")
    return lines


def reproduce_baselines(res: dict[str, Any]) -> str:
    a = res["settings"]
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
    the seeds' metrics.json in ``runs`` (read from the runs' folders when None); "n/a" where absent."""
    runs = seed_metrics(table, settings) if runs is None else runs
    cells = [instance_means(runs.get((dataset, spec), [])) for dataset, by_spec in table.items() for spec in by_spec]
    lines = baselines_markdown(table, argparse.Namespace(**settings)).split("\n")
    header = next(k for k, line in enumerate(lines) if line.startswith("| dataset | method |"))
    lines[header] += " " + " | ".join(label for _, label in INSTANCE_COLUMNS) + " |"
    lines[header + 1] += "---|" * len(INSTANCE_COLUMNS)
    end = header + 2 + len(cells)
    if any(not line.startswith("| ") for line in lines[header + 2:end]) or lines[end].startswith("| "):
        raise ValueError("the accuracy table's rows do not match its cells")  # baselines.markdown changed
    for k, means in enumerate(cells):
        lines[header + 2 + k] += " " + " | ".join("n/a" if means[key] is None else f"{100 * means[key]:.1f}"
                                                  for key, _ in INSTANCE_COLUMNS) + " |"
    lines[end:end] = ["", INSTANCE_NOTE]
    return "\n".join(lines)


def stale_line(res: dict[str, Any]) -> str | None:
    """The accuracy table's line on the runs it reused from another commit (``--reuse-stale``), or None."""
    stale = res.get("reused_stale") or []
    total = sum(len(cell["seeds"]) for by_spec in res["table"].values() for cell in by_spec.values())
    return stale_note(stale, total, res["git_commit"]) if stale else None


def baselines_section(res: dict, title: str, runs: dict[tuple[str, str], list[dict]], figure: str | None = None,
                      note: str | None = None) -> list[str]:
    """A ``## title`` section of the baselines table ``res``: provenance, command, ``note``, ``figure``, the table."""
    lines = [f"## {title}", "", f"Machine: {res['machine']}; assembled at commit {res['git_commit'][:12]} (each run "
             f"records its own commit in its metrics.json). Reproduce: {reproduce_baselines(res)}.", ""]
    if (stale := stale_line(res)) is not None:
        lines += [stale, ""]
    if note:
        lines += [note, ""]
    if figure:
        lines += [f"![accuracy against trainable prompt parameters]({figure})", ""]
    return lines + [accuracy_markdown(res["table"], res["settings"], runs)]


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
    lines = ["## Robustness to corrupted test images", "",
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
    return ["## Deployment: chip, host and accelerator, per image", "",
            f"Machine: {dep['machine']}. Reproduce: `python benchmarks/deployment.py --runs {s['runs']} --dataset "
            f"{s['dataset']} --seed {s['seed']} --limit {s['limit']} --out {s['out']}`.", "",
            f"![energy per image per method]({figure})", "", deployment_markdown(dep)]


def energy_sweep_section(sweep: dict, figure: str) -> list[str]:
    """Test accuracy against the generator's energy on the Loihi table, with the dense int8 cost beside."""
    s = sweep["settings"]
    return ["## Energy against accuracy", "",
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
    other_backbones = [(path, t) for path, t in ((path, load(path)) for path in args.other_backbones) if t]
    backbone_lines = [line for line in (against_lorvp(t) for _, t in other_backbones) if line]
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
        lines += targets_section(main_table, main_runs, [t for _, t in other_backbones])
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
                  "(docs/method.md).", "", lr_select_markdown(lr_select)]
    target_select = load(args.target_select)
    if target_select:
        lines += baselines_section(target_select, "Choosing LoRSP's sparsity target (on val, 3 seeds)",
                                   table_runs(args.target_select, target_select), note="The target kept is the best mean val accuracy of these rows; every row "
                                        "has at least 50% zero prompt pixels (docs/method.md).")
    for path, table in other_backbones:
        lines += baselines_section(table, f"Accuracy with {table['settings']['backbone']}", table_runs(path, table))
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
    diagnostics = load(args.diagnostics)
    if diagnostics:
        d = diagnostics["settings"]
        lines += ["## Does the prompt help, and does its per-image part (diagnostics)", "",
                  f"Machine: {diagnostics['machine']}. Reproduce: `python benchmarks/prompt_diagnostics.py --runs "
                  f"{d['runs']} --datasets {' '.join(d['datasets'])} --methods {' '.join(d['methods'])} --seeds "
                  f"{' '.join(map(str, d['seeds']))} --limit-test {d['limit_test']}`.", "",
                  "Test accuracy (%) of each trained run with its own head: its own prompt, no prompt, another "
                  "test image's prompt (a seeded permutation that moves every image), the mean prompt over the "
                  "scored images and, for LoRSP, every gate open and the generator reset to its start. A static "
                  "prompt scores the same with own, other and mean (docs/method.md).", "",
                  diagnostics_markdown(diagnostics["rows"])]
    gates = load(args.gate_usage)
    if gates:
        g = gates["settings"]
        lines += ["## How instance-specific are LoRSP's gates", "",
                  f"Machine: {gates['machine']}. Reproduce: `python benchmarks/gate_usage.py --runs {g['runs']} "
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
        lines += ["## Example prompts", "", "Reproduce: `python benchmarks/example_prompts.py` (the seed-0 runs of "
                  "the accuracy table).", "", f"![LoR-VP and LoRSP prompts]({rel('example_prompts.png')})", ""]
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
