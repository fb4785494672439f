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
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import add_protocol_args, map_runs, method_label, parse_method, run_one  # noqa: E402
from benchmarks.output import run_record, write_tables  # noqa: E402


def parse_grid(entry: str) -> tuple[str, list[float]]:
    spec, _, lrs = entry.rpartition("@")
    if not spec or not lrs:
        raise SystemExit(f"error: grid entry {entry!r} is not METHOD[:options]@lr,lr,...")
    return spec, [float(v) for v in lrs.split(",")]


def point(dataset: str, spec: str, lr: float, args: argparse.Namespace) -> dict[str, Any]:
    name, extra, tag = parse_method(spec)
    run_args = copy.copy(args)
    run_args.prompt_lr = lr
    run_args.out = str(Path(args.out) / f"plr{lr:g}")
    try:
        m = run_one(dataset, name, args.seed, run_args, extra, tag)
    except subprocess.CalledProcessError:
        return {"prompt_lr": lr, "diverged": True}
    return {"prompt_lr": lr, "diverged": False, "val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"],
            "prompt_sparsity": m.get("prompt_sparsity", 0.0), "best_epoch": m["best_epoch"], "command": m["command"],
            "reused": m["reused"]}


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", nargs="+", default=["vp@0.02,0.2,2,20", "lorvp@0.02,0.2,0.5", "lorsp@0.02,0.2,0.5",
                                                  "lorsp:sparsity-weight=3@0.2", "lorsp:sparsity-weight=30@0.2"])
    add_protocol_args(p, default_out="runs/lr-select")
    args = p.parse_args()
    grid = [parse_grid(entry) for entry in args.grid]
    done = iter(map_runs(lambda item: point(args.dataset, *item, args),
                         [(spec, lr) for spec, lrs in grid for lr in lrs], args.jobs, desc="lr-select runs"))
    table: dict[str, Any] = {}
    for spec, lrs in grid:
        points = [{k: v for k, v in next(done).items() if k != "reused"} for _ in lrs]
        ok = [q for q in points if not q["diverged"]]
        table[spec] = {"points": points,
                       "chosen_prompt_lr": max(ok, key=lambda q: q["val_accuracy"])["prompt_lr"] if ok else None}
    result = run_record(args, table=table)
    write_tables(args.out, "lr_select", result, markdown(result))
    print(json.dumps({k: v["chosen_prompt_lr"] for k, v in table.items()}))


if __name__ == "__main__":
    main()
