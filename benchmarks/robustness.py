"""Accuracy of trained runs on corrupted test images: does LoRSP adapt more robustly?

    python benchmarks/robustness.py --runs runs/baselines --datasets mnist-5k animal-shape \
        --methods none vp lorvp lorsp --seeds 0 1 2 --limit 500 --json runs/robustness/robustness.json

Reads the runs ``benchmarks/baselines.py`` trained (``RUNS/<dataset>/<method>/seed<k>/model.pt``),
never trains. Each model is scored on the first ``--limit`` test images, clean and under
every corruption of :mod:`lorsp.data.corruptions` (Gaussian noise, Gaussian blur,
contrast; severities 1-3; noise seeded per image, the same images for every method).
The table gives, per method, the mean +- std over seeds of clean accuracy, of accuracy per
corruption (mean over severities) and of the drop from clean (mean over all nine
corrupted sets), with the per-severity figures in the JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import method_label, parse_method, trained_model  # noqa: E402
from benchmarks.output import run_record  # noqa: E402
from lorsp.plumbing.fileio import file_sha256, write_json  # noqa: E402


def score_run(model_path: Path, limit: int, corruption_seed: int, progress: bool) -> dict[str, Any]:
    """``{"clean": acc, "<corruption>/<severity>": acc, ...}`` for one trained model."""
    import lorsp
    from lorsp.data import create_splits
    from lorsp.data.corruptions import CORRUPTIONS, SEVERITIES, CorruptedView
    from lorsp.metrics import evaluate

    model = lorsp.load(model_path)
    cfg = model.config
    test = create_splits(cfg["dataset"], cfg["image_size"], root=cfg.get("data_root"), limit_test=limit).test
    scores = {"clean": evaluate(model, test, progress=False)["accuracy"]}
    for name in CORRUPTIONS:
        for severity in SEVERITIES:
            view = CorruptedView(test, name, severity, seed=corruption_seed)
            scores[f"{name}/{severity}"] = evaluate(model, view, desc=f"{name}/{severity}",
                                                    progress=progress)["accuracy"]
    return scores


def cached_score_run(model_path: Path, limit: int, corruption_seed: int, progress: bool) -> dict[str, Any]:
    """:func:`score_run`, kept next to the model (``robustness-limit<L>-seed<S>.json``).

    The cache is used only while it names the sha256 of the very ``model.pt`` it scored, so a
    retrained run is scored again and an unchanged one is not (``make results`` can restart).
    """
    cache = model_path.parent / f"robustness-limit{limit}-seed{corruption_seed}.json"
    sha = file_sha256(model_path)
    if cache.exists():
        try:
            record = json.loads(cache.read_text())
            if record.get("model_sha256") == sha:
                return record["scores"]
        except (ValueError, KeyError, AttributeError):
            pass  # unreadable cache: score again and replace it
    scores = score_run(model_path, limit, corruption_seed, progress)
    write_json(cache, {"model_sha256": sha, "limit": limit, "corruption_seed": corruption_seed, "scores": scores})
    return scores


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    """Mean +- std over seeds of every score, per corruption (over severities) and of the mean drop."""
    from lorsp.data.corruptions import CORRUPTIONS

    keys = list(per_seed[0])
    corrupted = [k for k in keys if k != "clean"]
    out: dict[str, Any] = {"scores": {k: mean_std([s[k] for s in per_seed]) for k in keys}}
    out["per_corruption"] = {name: mean_std([statistics.mean(s[k] for k in corrupted if k.startswith(name + "/"))
                                             for s in per_seed]) for name in CORRUPTIONS}
    out["mean_drop"] = mean_std([s["clean"] - statistics.mean(s[k] for k in corrupted) for s in per_seed])
    out["seeds"] = len(per_seed)
    return out


def run_gate(runs: str, dataset: str, tag: str, seeds: list[int]) -> str | None:
    """The LoRSP gate (``band``, ``pixel``, ...) the runs of ``tag`` trained with, from their metrics.json; None for a
    method without one. The doc marks entries of band gating, the design before pixel gating became the default."""
    gates = {json.loads((Path(runs) / dataset / tag / f"seed{seed}" / "metrics.json").read_text()).get("gate")
             for seed in seeds}
    return gates.pop() if len(gates) == 1 else None


def markdown(result: dict[str, Any]) -> str:
    from lorsp.data.corruptions import CORRUPTIONS

    s = result["settings"]
    names = list(CORRUPTIONS)
    lines = [f"First {s['limit']} test images of each dataset; corruption seed {s['corruption_seed']}; "
             f"mean +- std over seeds {s['seeds']} of the runs in `{s['runs']}`. Columns per corruption: "
             "accuracy (%) averaged over severities 1-3; drop: clean minus the mean of all nine corrupted sets "
             "(points, lower is more robust).", "",
             "| dataset | method | clean | " + " | ".join(n.replace("_", " ") for n in names) + " | drop |",
             "|---|---|---|" + "---|" * len(names) + "---|"]
    fmt = lambda d: f"{100 * d['mean']:.1f} +- {100 * d['std']:.1f}"  # noqa: E731
    for dataset, methods in result["table"].items():
        for method, r in methods.items():
            lines.append(f"| {dataset} | {method_label(method)} | {fmt(r['scores']['clean'])} | "
                         + " | ".join(fmt(r["per_corruption"][n]) for n in names)
                         + f" | {fmt(r['mean_drop'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/baselines", help="the --out of benchmarks/baselines.py")
    p.add_argument("--datasets", nargs="+", default=["mnist-5k", "animal-shape"])
    p.add_argument("--methods", nargs="+", default=["none", "vp", "lorvp", "lorsp"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--limit", type=int, default=500, help="test images per dataset")
    p.add_argument("--corruption-seed", type=int, default=0)
    p.add_argument("--json", default="runs/robustness/robustness.json")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()
    from lorsp.plumbing.runtime import tune_allocator

    tune_allocator()
    table: dict[str, dict[str, Any]] = {}
    for dataset in args.datasets:
        table[dataset] = {}
        for spec in args.methods:
            _, _, tag = parse_method(spec)
            per_seed = []
            for seed in args.seeds:
                path = trained_model(args.runs, dataset, tag, seed)
                print(f"{dataset} {tag} seed {seed}", flush=True)
                per_seed.append(cached_score_run(path, args.limit, args.corruption_seed, args.progress))
            table[dataset][spec] = {**summarise(per_seed), "per_seed": per_seed}
            gate = run_gate(args.runs, dataset, tag, args.seeds)
            if gate is not None:
                table[dataset][spec]["gate"] = gate
    result = run_record(args, table=table)
    write_json(args.json, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
