"""Generate docs/results.md (and the README's results block) from the benchmark JSON: no hand-typed figure.

    python benchmarks/results_doc.py            # reads runs/..., writes docs/results.md, figures, README block

Each section appears only when its JSON exists; a missing one is listed at the end with
the command that makes it. ``make results`` runs every benchmark and then this script.
"""
from __future__ import annotations

import argparse
import glob
import json
import re
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import results_plots  # noqa: E402
from benchmarks.baselines import markdown as baselines_markdown, method_label, parse_method  # noqa: E402
from benchmarks.deployment import markdown as deployment_markdown  # noqa: E402
from benchmarks.few_shot import markdown as few_shot_markdown  # noqa: E402
from benchmarks.gate_usage import markdown as gate_usage_markdown  # noqa: E402
from benchmarks.lr_select import markdown as lr_select_markdown  # noqa: E402
from benchmarks.output import fail  # noqa: E402
from benchmarks.robustness import markdown as robustness_markdown  # noqa: E402
from benchmarks.train_speed import TARGET_STEP_RATIO  # noqa: E402
from lorsp.fileio import atomic_write  # noqa: E402
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


def headline(res: dict[str, Any]) -> list[str]:
    """One line per dataset: LoRSP against LoR-VP and the linear probe, with its sparsity."""
    lines = []
    for dataset, by_spec in res["table"].items():
        methods = first_specs(by_spec)
        if "lorsp" not in methods or "lorvp" not in methods:
            continue
        lo = methods["lorsp"][1]
        parts = []
        for ref in ("lorvp", "none", "vp"):
            if ref in methods:
                v, d = verdict(lo, methods[ref][1])
                parts.append(f"{v} against {method_label(methods[ref][0])} ({d:+.1f} points)")
        lines.append(f"- **{dataset}**: LoRSP {100 * lo['test_accuracy_mean']:.1f} +- "
                     f"{100 * lo['test_accuracy_std']:.1f} with {100 * lo['prompt_sparsity_mean']:.0f}% exactly-zero "
                     f"prompt pixels; " + "; ".join(parts) + ".")
    return lines


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


def run_dir(summary: dict[str, Any], settings: dict[str, Any], dataset: str, spec: str, seed: int) -> Path:
    """The folder of one seed's run of a table cell: the ``--out`` of its recorded command (``seedS``
    for the seed), else ``OUT/<dataset>/<tag>/seed<k>`` of the table's settings."""
    argv = shlex.split(summary.get("command", ""))
    if "--out" in argv[:-1]:
        out = argv[argv.index("--out") + 1]
        return Path(out[: -len("seedS")] + f"seed{seed}" if out.endswith("seedS") else out)
    return Path(settings.get("out", "runs/baselines")) / dataset / parse_method(spec)[2] / f"seed{seed}"


def seed_metrics(table: dict[str, dict[str, Any]], settings: dict[str, Any]) -> dict[tuple[str, str], list[dict]]:
    """(dataset, method spec) -> the metrics.json of each seed's run ({} where it is missing)."""
    found: dict[tuple[str, str], list[dict]] = {}
    for dataset, by_spec in table.items():
        for spec, summary in by_spec.items():
            paths = [run_dir(summary, settings, dataset, spec, seed) / "metrics.json"
                     for seed in summary.get("seeds", [])]
            found[(dataset, spec)] = [load(str(path)) or {} for path in paths]
    return found


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


def baselines_section(res: dict, title: str, figure: str | None = None, note: str | None = None) -> list[str]:
    lines = [f"## {title}", "", f"Machine: {res['machine']}; assembled at commit {res['git_commit'][:12]} (each run "
             f"records its own commit in its metrics.json). Reproduce: {reproduce_baselines(res)}.", ""]
    if note:
        lines += [note, ""]
    if figure:
        lines += [f"![accuracy against trainable prompt parameters]({figure})", ""]
    return lines + [accuracy_markdown(res["table"], res["settings"])]


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
                         f"{' '.join(r['settings']['datasets'])} --limit {r['settings']['limit']}`" for r in results)
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
    lines = ["## Speed", "", f"Machine: {machine}{at}. Ratios are within one run of each benchmark (docs/speed.md, "
             "docs/onnx.md, docs/fastsim.md say how each is measured).", "",
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
    names = {"train": "train_speed", "onnx": "onnx_latency", "onnx_nospin": "onnx_latency_nospin",
             "fastsim": "fastsim", "cosim": "cosim_throughput"}
    return {key: load(str(bench / f"{name}.json")) for key, name in names.items()}


def speed_machine(speed: dict[str, dict | None]) -> str:
    return next((d["machine"] for d in speed.values() if d and "machine" in d), "unknown")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baselines", default="runs/main/results.json")
    p.add_argument("--lr-select", default="runs/lr-select/lr_select.json")
    p.add_argument("--other-backbones", nargs="*", default=["runs/baselines-lite2/results.json",
                                                              "runs/baselines-lite1/results.json"],
                   help="accuracy tables of other backbones (baselines.py JSON), one section each")
    p.add_argument("--ablation", default="runs/main/ablation.json")
    p.add_argument("--target-select", default="runs/main/target-select.json")
    p.add_argument("--sweep", default="runs/main-sweep/sweep.json")
    p.add_argument("--robustness", default="runs/robustness/*.json", help="glob")
    p.add_argument("--few-shot", default="runs/few-shot/few_shot.json")
    p.add_argument("--gate-usage", default="runs/gate-usage/gate_usage.json")
    p.add_argument("--deployment", default="runs/deployment/deployment.json")
    p.add_argument("--speed-dir", default="runs/bench")
    p.add_argument("--figures", default="docs/figures")
    p.add_argument("--out", default="docs/results.md")
    p.add_argument("--readme", default="README.md", help="its results block is rewritten ('' to leave it)")
    p.add_argument("--only-speed", action="store_true",
                   help="rewrite only the Speed section of an existing --out from --speed-dir (after make bench)")
    args = p.parse_args()
    if args.only_speed:
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
        return
    figures = Path(args.figures)
    rel = lambda name: str((figures / name).relative_to(Path(args.out).parent))  # noqa: E731
    main_table = load(args.baselines)
    other_backbones = [t for t in map(load, args.other_backbones) if t]
    backbone_lines = [line for line in map(against_lorvp, other_backbones) if line]
    robustness = [json.loads(Path(f).read_text()) for f in sorted(glob.glob(args.robustness))]
    few_shot, deployment = load(args.few_shot), load(args.deployment)
    speed = load_speed(Path(args.speed_dir))
    lines = ["# Results", "", "Generated by `python benchmarks/results_doc.py` from the JSON the benchmarks "
             "write; every figure below comes from the command named beside it. Protocol: docs/protocol.md. "
             "Verdicts: a tie when the difference of the means is within the larger standard deviation over seeds.",
             ""]
    missing = []
    if main_table:
        lines += ["## Headline", ""] + headline(main_table) + backbone_lines + [""]
        results_plots.accuracy_vs_params(main_table["table"], figures / "accuracy_params.png")
        lines += baselines_section(main_table, "Accuracy, parameters and sparsity", rel("accuracy_params.png"))
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
                                   note="The target kept is the best mean val accuracy of these rows; every row "
                                        "has at least 50% zero prompt pixels (docs/method.md).")
    for table in other_backbones:
        lines += baselines_section(table, f"Accuracy with {table['settings']['backbone']}")
    if not other_backbones:
        missing.append(("EfficientNet-Lite2 table", "python benchmarks/baselines.py --backbone efficientnet_lite2 "
                        "--out runs/baselines-lite2"))
    ablation = load(args.ablation)
    if ablation:
        lines += baselines_section(ablation, "Ablation")
    sweep = load(args.sweep)
    if sweep:
        lines += sweep_section(sweep, rel("sparsity_accuracy.png"))
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
    if (figures / "example_prompts.png").exists():
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
