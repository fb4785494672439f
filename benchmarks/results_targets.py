"""docs/results.md's Targets: issue 30's targets for LoRSP, each computed from the collected tables, met or
missed with its figure, or "not measured" where its data is absent (never "met" without data).

The tables: the main accuracy table (baselines.py's, or the one results_union assembled; LoRSP's rows, its
dense twin's, its static mask's and the peers'), each LoRSP seed's metrics.json, the diagnostics table
(prompt_diagnostics.py), the parameter table (baselines.py with LoR-VP and LoRSP at several sizes), the gate
energy table (pixel_energy.py) and the training-step table (train_speed.py). A figure is compared with its
threshold after rounding the difference to 1e-9, so a figure exactly at the threshold meets it.
"""
from __future__ import annotations

import math
import statistics
from pathlib import PurePosixPath
from typing import Any

from benchmarks.baselines import method_label, parse_method
from benchmarks.train_speed import TARGET_STEP_RATIO as STEP_RATIO

TWIN_OPTION, STATIC_OPTION = "relay=open", "pixel-input=none"
"""The option that makes a LoRSP spec its dense twin (every gate held open, trained), and the one that makes
it the static mask of the same sparsity (the generator sees no image, trained)."""
PROBE_GAIN = 1.5
"""LoRSP minus the linear probe, mean over the data sets, at least (points); no data set may lose."""
ON_PAR_TARGETS = {"lorvp": 4, "smm": 3}
"""On par (wins or ties under :func:`verdict`) with these methods on at least this many data sets."""
TWIN_GAP = -0.5
"""LoRSP minus its dense twin, mean over the data sets, at least (points)."""
SPARSITY_TARGET = 0.5
"""LoRSP's mean share of exactly-zero prompt pixels on every data set, at least."""
OTHER_MASK_COST = 0.5
"""Own prompt minus another image's (diagnostics), mean over seeds then data sets, at least (points)."""
STATIC_GAP = 0.5
"""LoRSP minus the best static mask of its sparsity, mean over the data sets, at least (points)."""
UNIQUE_TARGET = 0.90
"""Share of the first test images with a zero mask of their own, on every data set and seed, at least."""
GENERATOR_GAIN = 1.0
"""Own prompt minus the generator reset to its start (diagnostics), mean over the data sets, at least."""
CURVE_SETS = 4
"""Data sets where LoRSP's parameter curve is on or above LoR-VP's (:func:`on_or_above`), at least."""
CURVE_LORVP_RANKS, CURVE_LORSP_SIZES = 5, 3
"""Points the parameter figure needs per data set: LoR-VP at ranks 1, 2, 4, 8, 16; LoRSP at three sizes."""
CHIP_TABLE, DENSE_FP32, DENSE_INT8 = "loihi-davies2018", "horowitz-fp32-dense", "horowitz-int8-dense"
"""pixel_energy.py's energy tables: the chip (Davies et al. 2018) against the dense fp32 run (beside int8)."""


# --------------------------------------------------------------------------- rows
def verdict(lorsp: dict[str, Any], other: dict[str, Any]) -> tuple[str, float]:
    """``("wins" | "ties" | "loses", difference in points)``: a tie when the difference of the
    means is within the larger of the two standard deviations over seeds."""
    diff = 100 * (lorsp["test_accuracy_mean"] - other["test_accuracy_mean"])
    noise = 100 * max(lorsp["test_accuracy_std"], other["test_accuracy_std"])
    return ("ties" if abs(diff) <= noise else "wins" if diff > 0 else "loses"), diff


def on_par(lorsp: dict[str, Any], other: dict[str, Any]) -> bool:
    """LoRSP wins or ties against ``other`` under :func:`verdict`."""
    return verdict(lorsp, other)[0] != "loses"


def variant(spec: str) -> str | None:
    """``"twin"`` or ``"static"`` for LoRSP's dense twin or static mask (:data:`TWIN_OPTION`,
    :data:`STATIC_OPTION`), else None."""
    options = spec.partition(":")[2].split(",")
    return "twin" if TWIN_OPTION in options else "static" if STATIC_OPTION in options else None


def first_specs(by_spec: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Method name -> (spec, summary) of its first row that is neither a twin nor a static mask
    (``vp:prompt-lr=20`` answers for ``vp``); ``twin`` and ``static`` -> LoRSP's first such rows."""
    methods: dict[str, tuple[str, dict[str, Any]]] = {}
    for spec, summary in by_spec.items():
        name = spec.partition(":")[0]
        methods.setdefault((variant(spec) or name) if name == "lorsp" else name, (spec, summary))
    return methods


def lorsp_rows(res: dict[str, Any]) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """Dataset -> :func:`first_specs` of each dataset of the table that has a LoRSP row."""
    return {d: methods for d, methods in ((d, first_specs(b)) for d, b in res["table"].items()) if "lorsp" in methods}


def at_least(value: float, threshold: float) -> bool:
    """``value >= threshold``, the difference rounded to 1e-9 (a figure at the threshold meets it)."""
    return round(value - threshold, 9) >= 0


def met(ok: bool) -> str:
    return "met" if ok else "missed"


def line(name: str, ok: bool | None, text: str) -> str:
    """One target's line: met or missed with its figures, or not measured (``ok`` None) and why."""
    return f"- **{name}**: " + (f"not measured: {text}" if ok is None else f"{met(ok)}. {text}")


def missing_on(rows: dict[str, dict], ref: str) -> list[str]:
    return [d for d, m in rows.items() if ref not in m]


def fmt_sets(names: list[str]) -> str:
    return ", ".join(names)


# --------------------------------------------------------------------------- the accuracy table's targets
def probe_gain_target(rows: dict[str, dict]) -> str:
    """LoRSP minus the linear probe: the mean over the data sets, and no data set lost under the tie rule."""
    name = "gain over the linear probe"
    if absent := missing_on(rows, "none"):
        return line(name, None, f"no linear-probe row on {fmt_sets(absent)}.")
    diffs = {d: verdict(m["lorsp"][1], m["none"][1]) for d, m in rows.items()}
    mean = statistics.mean(d for _, d in diffs.values())
    lost = [f"{d} ({x:+.1f})" for d, (v, x) in diffs.items() if v == "loses"]
    worst = min(diffs, key=lambda d: diffs[d][1])
    return line(name, at_least(mean, PROBE_GAIN) and not lost,
                f"LoRSP {mean:+.2f} points over the linear probe in the mean over {len(rows)} data sets (target >= "
                f"{PROBE_GAIN:+.1f}); lowest {worst} {diffs[worst][1]:+.1f} ({diffs[worst][0]}); below the probe "
                f"beyond the tie rule on {fmt_sets(lost) or 'no data set'} (target: none).")


def peers_target(rows: dict[str, dict]) -> str:
    """On par (wins or ties) with LoR-VP and SMM on enough data sets."""
    name = "against LoR-VP and SMM"
    absent = [f"{ref} on {fmt_sets(missing_on(rows, ref))}" for ref in ON_PAR_TARGETS if missing_on(rows, ref)]
    if absent:
        return line(name, None, f"no row of {'; '.join(absent)}.")
    counts = {ref: sum(on_par(m["lorsp"][1], m[ref][1]) for m in rows.values()) for ref in ON_PAR_TARGETS}
    par = ", ".join(f"{method_label(ref)} on {counts[ref]} of {len(rows)} data sets (target >= {n})"
                    for ref, n in ON_PAR_TARGETS.items())
    return line(name, all(counts[ref] >= n for ref, n in ON_PAR_TARGETS.items()),
                f"LoRSP on par (wins or ties) with {par}.")


def seeds_note(rows: dict[str, dict], ref: str) -> str:
    """Which seeds LoRSP's and ``ref``'s rows average, where they differ."""
    a = sorted({s for m in rows.values() for s in m["lorsp"][1].get("seeds", [])})
    b = sorted({s for m in rows.values() for s in m[ref][1].get("seeds", [])})
    return "" if a == b else f" (LoRSP over seeds {a}, the other row over seeds {b})"


def lorsp_accuracy_on(dataset: str, methods: dict, seeds: list[int],
                      runs: dict[tuple[str, str], list[dict]]) -> float | None:
    """LoRSP's mean test accuracy on ``dataset`` over ``seeds`` alone, from its seeds' metrics; None where a seed's
    figure is missing."""
    by_seed = {r.get("seed"): r.get("test_accuracy") for r in runs.get((dataset, methods["lorsp"][0]), [])}
    picked = [by_seed.get(seed) for seed in seeds]
    return None if not picked or None in picked else statistics.mean(picked)


def gap_target(rows: dict[str, dict], ref: str, name: str, threshold: float, what: str,
               runs: dict[tuple[str, str], list[dict]] | None = None) -> str:
    """LoRSP minus ``ref``'s row (a twin or static mask), mean over the data sets, at least ``threshold``. Where
    ``ref``'s row averages fewer seeds than LoRSP's, LoRSP is taken over ``ref``'s seeds alone (from ``runs``, its
    seeds' metrics), so both sides average the same seeds; without them the means are compared as they are, and
    said so."""
    if absent := missing_on(rows, ref):
        return line(name, None, f"no row of {what} on {fmt_sets(absent)}.")
    diffs, matched = {}, True
    for d, m in rows.items():
        ours, theirs = m["lorsp"][1], m[ref][1]
        own = ours["test_accuracy_mean"]
        if sorted(theirs.get("seeds", [])) != sorted(ours.get("seeds", [])):
            same = lorsp_accuracy_on(d, m, theirs.get("seeds", []), runs or {})
            matched = matched and same is not None
            own = own if same is None else same
        diffs[d] = 100 * (own - theirs["test_accuracy_mean"])
    mean = statistics.mean(diffs.values())
    per = ", ".join(f"{d} {x:+.1f}" for d, x in diffs.items())
    note = seeds_note(rows, ref)
    if note:
        note = (f" (LoRSP taken over the other row's seeds, {sorted({s for m in rows.values() for s in m[ref][1]['seeds']})})"
                if matched else note)
    return line(name, at_least(mean, threshold),
                f"LoRSP minus {what} {mean:+.2f} points in the mean over {len(rows)} data sets (target >= "
                f"{threshold:+.1f}; {per}){note}.")


def sparsity_target(rows: dict[str, dict]) -> str:
    """LoRSP's lowest mean share of exactly-zero prompt pixels over the data sets."""
    low, at = min((m["lorsp"][1].get("prompt_sparsity_mean") or 0.0, d) for d, m in rows.items())
    return line("zero prompt pixels", at_least(low, SPARSITY_TARGET),
                f"LoRSP's lowest mean share of exactly-zero prompt pixels {100 * low:.1f}% ({at}; target >= "
                f"{100 * SPARSITY_TARGET:.0f}% on every data set).")


def instance_target(rows: dict[str, dict], runs: dict[tuple[str, str], list[dict]]) -> str:
    """Every seed's share of images with a zero mask of their own, on every data set."""
    name = "own zero masks"
    unique = []
    for dataset, methods in rows.items():
        seeds = runs.get((dataset, methods["lorsp"][0]), [])
        shares = [r.get("prompt_unique_mask_share") for r in seeds]
        if not seeds or None in shares:
            return line(name, None, f"LoRSP's runs on {dataset} lack the per-instance figures.")
        unique.append((min(shares), dataset))
    u, at = min(unique)
    return line(name, at_least(u, UNIQUE_TARGET),
                f"LoRSP's lowest share of images with a zero mask of their own, over seeds and data sets, "
                f"{100 * u:.1f}% ({at}; target >= {100 * UNIQUE_TARGET:.0f}% on every data set and seed).")


def params_target(rows: dict[str, dict]) -> str:
    """LoRSP's trainable prompt parameters (its most on any data set) against LoR-VP's (their fewest)."""
    if absent := missing_on(rows, "lorvp"):
        return line("parameters", None, f"no LoR-VP row on {fmt_sets(absent)}.")
    pairs = [(m["lorsp"][1]["params"]["prompt"], m["lorvp"][1]["params"]["prompt"]) for m in rows.values()]
    lo, ref = max(p[0] for p in pairs), min(p[1] for p in pairs)
    return line("parameters", all(a <= b for a, b in pairs),
                f"LoRSP {lo:,} trained prompt parameters (factors and generator), LoR-VP {ref:,} (target: at most "
                f"LoR-VP's).")


# --------------------------------------------------------------------------- the diagnostics' targets
def diagnostics_gap(rows: dict[str, dict], diagnostics: dict[str, Any] | None, variant_name: str) -> \
        tuple[dict[str, float], str | None]:
    """Per data set, the mean over seeds of LoRSP's own-prompt accuracy minus its accuracy under
    ``variant_name`` (points); or why it cannot be computed."""
    if not diagnostics:
        return {}, "no diagnostics table."
    found: dict[str, list[float]] = {}
    for dataset, methods in rows.items():
        tag = parse_method(methods["lorsp"][0])[2]
        found[dataset] = [100 * (r["own"] - r[variant_name]) for r in diagnostics["rows"]
                          if r["dataset"] == dataset and parse_method(r["method"])[2] == tag and variant_name in r]
    if absent := [d for d, v in found.items() if not v]:
        return {}, f"no diagnostics row of LoRSP with '{variant_name}' on {fmt_sets(absent)}."
    return {d: statistics.mean(v) for d, v in found.items()}, None


def diagnostics_target(rows: dict[str, dict], diagnostics: dict[str, Any] | None, variant_name: str, name: str,
                       threshold: float, what: str) -> str:
    gaps, why = diagnostics_gap(rows, diagnostics, variant_name)
    if why:
        return line(name, None, why)
    mean = statistics.mean(gaps.values())
    seeds = sorted({r["seed"] for r in diagnostics["rows"]})
    per = ", ".join(f"{d} {x:+.1f}" for d, x in gaps.items())
    return line(name, at_least(mean, threshold),
                f"LoRSP's own prompt minus {what} {mean:+.2f} points in the mean over {len(gaps)} data sets (seeds "
                f"{seeds}; target >= {threshold:+.1f}; {per}).")


# --------------------------------------------------------------------------- the parameter figure
def param_points(by_spec: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """``{"lorvp": [(prompt params, test accuracy %)], "lorsp": [...]}`` of one data set of the parameter
    table, sorted by parameters (LoRSP's twin and static rows left out)."""
    points: dict[str, list[tuple[int, float]]] = {"lorvp": [], "lorsp": []}
    for spec, cell in by_spec.items():
        name = spec.partition(":")[0]
        if name in points and variant(spec) is None:
            points[name].append((cell["params"]["prompt"], 100 * cell["test_accuracy_mean"]))
    return {name: sorted(p) for name, p in points.items()}


def curve_at(points: list[tuple[int, float]], params: int) -> float:
    """The accuracy of the curve through ``points`` at ``params``: linear in log(params) between the two
    neighbouring points, flat beyond the first and the last."""
    if params <= points[0][0]:
        return points[0][1]
    if params >= points[-1][0]:
        return points[-1][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= params <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (math.log(params) - math.log(x0)) / (math.log(x1) - math.log(x0))
    raise AssertionError("unreachable")


def on_or_above(lorsp: list[tuple[int, float]], lorvp: list[tuple[int, float]]) -> bool:
    """LoRSP's curve is on or above LoR-VP's: at each LoRSP size, its accuracy is at least LoR-VP's curve
    (:func:`curve_at`) at the same number of parameters."""
    return all(at_least(acc, curve_at(lorvp, params)) for params, acc in lorsp)


CURVE_RULE = ("LoRSP's curve is on or above LoR-VP's on a data set when at each LoRSP size its test accuracy is at "
              "least LoR-VP's at the same number of trained prompt parameters, LoR-VP's accuracy taken linearly "
              "interpolated in log(parameters) between its two neighbouring ranks (and held flat beyond its "
              "fewest and its most parameters)")


def param_curve_target(param_table: dict[str, Any] | None) -> str:
    name = "parameter curve"
    if not param_table:
        return line(name, None, "no parameter table.")
    points = {d: param_points(b) for d, b in param_table["table"].items()}
    short = [f"{d} (LoR-VP {len(p['lorvp'])}, LoRSP {len(p['lorsp'])})" for d, p in points.items()
             if len(p["lorvp"]) < CURVE_LORVP_RANKS or len(p["lorsp"]) < CURVE_LORSP_SIZES]
    if short:
        return line(name, None, f"the figure needs LoR-VP at {CURVE_LORVP_RANKS} ranks and LoRSP at "
                    f"{CURVE_LORSP_SIZES} sizes or more on every data set; it has {fmt_sets(short)}.")
    above = [d for d, p in points.items() if on_or_above(p["lorsp"], p["lorvp"])]
    return line(name, len(above) >= CURVE_SETS,
                f"LoRSP's curve on or above LoR-VP's on {len(above)} of {len(points)} data sets "
                f"({fmt_sets(above) or 'none'}; target >= {CURVE_SETS}; the rule: under the figure).")


# --------------------------------------------------------------------------- energy and cost
def energy_target(energy: dict[str, Any] | None) -> str:
    """The gates' energy per image on the chip's table at most the same network run dense in fp32, every set."""
    name = "energy"
    rows = (energy or {}).get("rows") or []
    if not rows or any(t not in r.get("energy_nj", {}) for r in rows for t in (CHIP_TABLE, DENSE_FP32, DENSE_INT8)):
        return line(name, None, "no gate-energy table with the chip's and the dense runs' energy.")
    per = "; ".join(f"{r['dataset']} {r['energy_nj'][CHIP_TABLE]:,.0f} nJ against {r['energy_nj'][DENSE_FP32]:,.0f} "
                    f"(fp32) and {r['energy_nj'][DENSE_INT8]:,.0f} (int8)" for r in rows)
    ok = all(r["energy_nj"][CHIP_TABLE] <= r["energy_nj"][DENSE_FP32] for r in rows)
    runs = sorted({PurePosixPath(r["checkpoint"]).parent.parent.name for r in rows if r.get("checkpoint")})
    of = f"the runs {', '.join(runs)}; " if runs else ""
    return line(name, ok, f"The gates' energy per image on Davies et al.'s Loihi table against the same network "
                f"run dense, per data set: {per} (target: at most dense fp32 on every data set; "
                f"{of}{energy['settings'].get('samples', '?')} test images, commit {energy['git_commit'][:12]}).")


def step_entry(step: dict[str, Any], main_spec: str | None) -> tuple[str, dict[str, Any]] | None:
    """The LoRSP entry of a train_speed.py table that stands for the default: the main table's LoRSP spec,
    else ``lorsp``, else the LoRSP entry with the fewest options; None without a LoRSP entry."""
    entries = {k: v for k, v in step.get("images_per_s", {}).items()
               if k.partition(":")[0] == "lorsp" and "step_time_vs_lorvp" in v}
    for key in (main_spec, "lorsp"):
        if key in entries:
            return key, entries[key]
    if not entries:
        return None
    key = min(entries, key=lambda k: len(parse_method(k)[1]))
    return key, entries[key]


def cost_target(step: dict[str, Any] | None, main_spec: str | None) -> str:
    name = "training-step cost"
    entry = step_entry(step, main_spec) if step else None
    if entry is None:
        return line(name, None, "no train_speed.py table with LoRSP's step time against LoR-VP's.")
    spec, v = entry
    spread = v.get("step_time_vs_lorvp_range")
    rounds = f" (rounds {spread[0]:.2f}-{spread[1]:.2f})" if spread else ""
    baseline = step.get("baseline") or {}
    then = baseline.get("step_time_vs_lorvp", {}).get(spec)
    before = (f" In the same run, alternated in fresh processes: {then['now']:.2f}x with this commit's code and "
              f"{then['then']:.2f}x at {baseline['revision'][:12]} (`--baseline`)." if then else "")
    return line(name, v["step_time_vs_lorvp"] <= STEP_RATIO,
                f"A training step of {method_label(spec)} takes {v['step_time_vs_lorvp']:.2f}x LoR-VP's{rounds} "
                f"(target <= {STEP_RATIO}x; commit {step.get('git_commit', 'unknown')[:12]}).{before}")


# --------------------------------------------------------------------------- the section
def targets_section(main_table: dict[str, Any], runs: dict[tuple[str, str], list[dict]],
                    diagnostics: dict[str, Any] | None = None, param_table: dict[str, Any] | None = None,
                    energy: dict[str, Any] | None = None, step: dict[str, Any] | None = None) -> list[str]:
    """Issue 30's targets, each met, missed or not measured with its figures; [] when the main table has no
    LoRSP row."""
    rows = lorsp_rows(main_table)
    if not rows:
        return []
    spec = next(iter(rows.values()))["lorsp"][0]
    lines = [probe_gain_target(rows), peers_target(rows),
             gap_target(rows, "twin", "within 0.5 point of the dense twin", TWIN_GAP,
                        f"its dense twin ({TWIN_OPTION})", runs),
             sparsity_target(rows),
             diagnostics_target(rows, diagnostics, "other", "another image's mask", OTHER_MASK_COST,
                                "another image's prompt (a seeded permutation)"),
             gap_target(rows, "static", "best static mask", STATIC_GAP, f"the static mask ({STATIC_OPTION})", runs),
             instance_target(rows, runs),
             diagnostics_target(rows, diagnostics, "generator reset", "the spiking network learns", GENERATOR_GAIN,
                                "the generator reset to its start"),
             params_target(rows), param_curve_target(param_table), energy_target(energy), cost_target(step, spec)]
    return ["## Targets", "",
            f"Issue 30's targets on {main_table['settings']['backbone']}, each computed from the tables below (the "
            f"tie rule above; means in points). LoRSP is the first LoRSP row of the accuracy table per data set "
            f"({method_label(spec)}), its dense twin the row with {TWIN_OPTION}, its static mask the row with "
            f"{STATIC_OPTION}. A target whose data is absent is not measured; a figure exactly at its threshold "
            "meets it.", ""] + lines + [""]
