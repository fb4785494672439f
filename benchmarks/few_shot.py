"""Few-shot adaptation: K training images per class, every method, several seeds.

    python benchmarks/few_shot.py --datasets mnist-5k sklearn-digits --shots 1 4 16 \
        --methods none lorvp lorsp --seeds 0 1 2 --out runs/few-shot

Each run is ``lorsp-train --shots K`` (``benchmarks/baselines.py``'s protocol otherwise:
backbone, image size, rank, batch, lr), with the support set drawn by the run's seed.
So that every K gets the same optimisation budget, the number of epochs is chosen to give
``--steps`` SGD steps (``ceil(steps / ceil(K C / batch))`` epochs for C classes); model
selection reads a validation split of ``--limit-val`` images (a few-shot user has little
labelled data to spare); the test split is the first ``--limit-test`` images, as in the
main table. Runs already complete are reused.
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import (Run, add_protocol_args, map_runs, method_label, parse_method, plan_run,  # noqa: E402
                                  summarise, train_run)
from benchmarks.engine import engine_options  # noqa: E402
from benchmarks.output import run_record, write_tables  # noqa: E402
from lorsp.plumbing.cli import run_cli  # noqa: E402


def epochs_for(shots: int, classes: int, batch_size: int, steps: int) -> int:
    """Epochs that give at least ``steps`` optimiser steps on ``shots * classes`` images."""
    return max(1, math.ceil(steps / math.ceil(shots * classes / batch_size)))


def num_classes(dataset: str) -> int:
    from lorsp.data.registry import load_source

    return len(load_source(dataset).classes)


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [f"Backbone {s['backbone']}, {s['image_size']} px, {s['steps']} SGD steps per run (batch "
             f"{s['batch_size']}, lr {s['lr']}), {s['limit_val']} validation and {s['limit_test']} test images; "
             f"test accuracy (%) of the val-selected model, mean +- std over seeds {s['seeds']}.", "",
             "| dataset | method | " + " | ".join(f"{k}-shot" for k in s["shots"]) + " |",
             "|---|---|" + "---|" * len(s["shots"])]
    for dataset, methods in result["table"].items():
        for method, by_k in methods.items():
            lines.append(f"| {dataset} | {method_label(method)} | " + " | ".join(
                f"{100 * by_k[str(k)]['test_accuracy_mean']:.1f} +- {100 * by_k[str(k)]['test_accuracy_std']:.1f}"
                for k in s["shots"]) + " |")
    lines += ["", "Commands (S = seed):", ""]
    lines += [f"    {r['command']}" for methods in result["table"].values() for by_k in methods.values()
              for r in by_k.values()]
    return "\n".join(lines) + "\n"


@run_cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["mnist-5k", "sklearn-digits"])
    p.add_argument("--methods", nargs="+", default=["none", "vp", "lorvp", "lorsp"])
    p.add_argument("--shots", nargs="+", type=int, default=[1, 4, 16])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=60, help="SGD steps per run, whatever K")
    p.add_argument("--limit-val", type=int, default=50)
    add_protocol_args(p, default_out="runs/few-shot")
    p.set_defaults(limit_test=500)
    args = p.parse_args(argv)
    cells = [(dataset, spec, k) for dataset in args.datasets for spec in args.methods for k in args.shots]

    run_args = {}  # per (dataset, K): the protocol with that many epochs (made here, not in the worker threads)
    for dataset in args.datasets:
        for k in args.shots:
            run_args[dataset, k] = copy.copy(args)
            run_args[dataset, k].epochs = epochs_for(k, num_classes(dataset), args.batch_size, args.steps)

    def plan(dataset: str, spec: str, k: int, seed: int) -> Run:
        name, extra, tag = parse_method(spec)
        return plan_run(dataset, name, seed, run_args[dataset, k],
                        (*extra, "--shots", str(k), "--limit-val", str(args.limit_val)), f"{tag}-{k}shot")

    runs = [plan(*cell, seed) for cell in cells for seed in args.seeds]
    done = iter(map_runs(lambda run: train_run(run, args.jobs), runs, args.jobs, desc="few-shot runs",
                         engine=engine_options(args)))
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset, spec, k in cells:
        runs = [next(done) for _ in args.seeds]
        table.setdefault(dataset, {}).setdefault(spec, {})[str(k)] = {**summarise(runs),
                                                                       "epochs": run_args[dataset, k].epochs}
    result = run_record(args, table=table)
    write_tables(args.out, "few_shot", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
