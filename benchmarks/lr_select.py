"""Choose each method's prompt learning rate (and LoRSP's sparsity weight) on the validation split.

    python benchmarks/lr_select.py --dataset mnist-5k --seed 0 \
        --grid lorvp@0.02,0.2,0.5 vp@0.02,0.2,2 lorsp@0.02,0.2,0.5 lorsp:sparsity-weight=0.3@0.2 \
        --out runs/lr-select

Each grid entry is ``METHOD[:options]@lr,lr,...``; every point is a ``lorsp-train`` run under
``benchmarks/baselines.py``'s protocol with ``--prompt-lr`` set (runs go to
``OUT/plr<lr>/<dataset>/<tag>/seed<k>`` and are reused when complete; ``0.02`` is the
shared ``--lr``, the protocol before prompts had their own rate). The table lists val and
test accuracy and prompt sparsity; the choice per method is the best **val** accuracy
(test is shown, never used). A run that diverges (NaN loss) is listed as such.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import (Run, RunFailed, add_protocol_args, map_runs, method_label, parse_method,  # noqa: E402
                                  plan_run, train_run)
from benchmarks.engine import engine_options  # noqa: E402
from benchmarks.output import run_record, write_tables  # noqa: E402
from lorsp.plumbing.cli import run_cli  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402


def parse_grid(entry: str) -> tuple[str, list[float]]:
    spec, _, lrs = entry.rpartition("@")
    if not spec or not lrs:
        raise LorspError(f"grid entry {entry!r} is not METHOD[:options]@lr,lr,...")
    try:
        return spec, [float(v) for v in lrs.split(",")]
    except ValueError:
        raise LorspError(f"grid entry {entry!r}: the learning rates after @ must be numbers") from None


def plan_point(dataset: str, spec: str, lr: float, args: argparse.Namespace) -> Run:
    """The run of one grid point: ``spec`` with prompt learning rate ``lr``, under ``OUT/plr<lr>``."""
    name, extra, tag = parse_method(spec)
    run_args = copy.copy(args)
    run_args.prompt_lr = lr
    run_args.out = str(Path(args.out) / f"plr{lr:g}")
    return plan_run(dataset, name, args.seed, run_args, extra, tag)


def point(run: Run, lr: float, jobs: int) -> dict[str, Any]:
    """Train (or reuse) one grid point; a run that fails (NaN loss) is a diverged point."""
    try:
        m = train_run(run, jobs)
    except RunFailed:
        return {"prompt_lr": lr, "diverged": True, "reused": False}
    return {"prompt_lr": lr, "diverged": False, "val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"],
            "prompt_sparsity": m.get("prompt_sparsity", 0.0), "best_epoch": m["best_epoch"], "command": m["command"],
            "reused": m["reused"], **({"gate": m["gate"]} if m.get("gate") else {})}


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [f"{s['dataset']}, seed {s['seed']}, {s['backbone']}, {s['image_size']} px, {s['epochs']} epochs, head lr "
             f"{s['lr']}; the chosen prompt lr per method is the best val accuracy (bold).", "",
             "| method | prompt lr | val accuracy (%) | test accuracy (%) | zero prompt pixels (%) |", "|---|---|---|---|---|"]
    for spec, entry in result["table"].items():
        for p in entry["points"]:
            chosen = p["prompt_lr"] == entry["chosen_prompt_lr"]
            if p["diverged"]:
                lines.append(f"| {method_label(spec)} | {p['prompt_lr']:g} | diverged | - | - |")
                continue
            val = f"**{100 * p['val_accuracy']:.1f}**" if chosen else f"{100 * p['val_accuracy']:.1f}"
            lines.append(f"| {method_label(spec)} | {p['prompt_lr']:g} | {val} | {100 * p['test_accuracy']:.1f} | "
                         f"{100 * p['prompt_sparsity']:.1f} |")
    return "\n".join(lines) + "\n"


@run_cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", nargs="+", default=["vp@0.02,0.2,2,20", "lorvp@0.02,0.2,0.5", "lorsp@0.02,0.2,0.5",
                                                  "lorsp:sparsity-weight=3@0.2", "lorsp:sparsity-weight=30@0.2"])
    add_protocol_args(p, default_out="runs/lr-select")
    args = p.parse_args(argv)
    grid = [parse_grid(entry) for entry in args.grid]
    planned = [(plan_point(args.dataset, spec, lr, args), lr) for spec, lrs in grid for lr in lrs]
    done = iter(map_runs(lambda item: point(*item, args.jobs), planned, args.jobs, desc="lr-select runs",
                         engine=engine_options(args)))
    table: dict[str, Any] = {}
    for spec, lrs in grid:
        points = [{k: v for k, v in next(done).items() if k != "reused"} for _ in lrs]
        ok = [q for q in points if not q["diverged"]]
        table[spec] = {"points": points,
                       "chosen_prompt_lr": max(ok, key=lambda q: q["val_accuracy"])["prompt_lr"] if ok else None}
    result = run_record(args, table=table)
    write_tables(args.out, "lr_select", result, markdown(result))
    print(json.dumps({k: v["chosen_prompt_lr"] for k, v in table.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
