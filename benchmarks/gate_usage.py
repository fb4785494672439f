"""How instance-specific are a trained LoRSP's gates? Per gate, the share of test images it opens.

    python benchmarks/gate_usage.py --runs runs/main --datasets mnist-5k animal-shape \
        --method lorsp-prompt-lr-0.2 --seeds 0 1 2 --limit 500 --json runs/gate-usage/gate_usage.json

For each run (``RUNS/<dataset>/<method>/seed<k>/model.pt``), on the first ``--limit`` test
images: how many row and column gates are closed per image (mean, min, max), and how the
gates split into *always open*, *always closed* and *switching* (open on some images, closed
on others). Only switching gates make one image's prompt differ from another's; a gate that
is always closed is a fixed zero band, the same for every image. Band gating has ``G r`` row
and ``G r`` column gates (one per term and band), row/column gating ``G`` of each. Reads runs, never trains.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import trained_model  # noqa: E402
from benchmarks.output import fail, run_record, write_tables  # noqa: E402


def gate_usage(model_path: Path, limit: int) -> dict[str, Any]:
    """Gate statistics of one LoRSP run (band or row/column gating) on its first ``limit`` test images.

    The first half of the gate neurons gate rows, the second half columns: ``G`` each for
    row/column gating, ``G r`` each (one per term and band) for band gating.
    """
    import torch

    import lorsp
    from lorsp.data import load_split_images

    model = lorsp.load(model_path).eval()
    prompt, cfg = model.prompt, model.config
    if cfg["prompt"] != "lorsp" or prompt.gate not in ("band", "rowcol"):
        fail(f"{model_path} is not a LoRSP run with band or row/column gates")
    x, _ = load_split_images(cfg["dataset"], cfg["image_size"], limit, cfg.get("data_root"))
    with torch.no_grad():
        open_ = torch.cat([prompt.gate_rates(batch) for batch in x.split(100)]) > 0  # (N, 2G)
    g = open_.shape[1] // 2
    closed_rows, closed_cols = (~open_[:, :g]).sum(1).float(), (~open_[:, g:]).sum(1).float()
    share = open_.float().mean(0)
    return {
        "images": int(open_.shape[0]), "gates_per_side": g,
        "closed_rows": {"mean": float(closed_rows.mean()), "min": int(closed_rows.min()), "max": int(closed_rows.max())},
        "closed_cols": {"mean": float(closed_cols.mean()), "min": int(closed_cols.min()), "max": int(closed_cols.max())},
        "always_open": int((share == 1).sum()), "always_closed": int((share == 0).sum()),
        "switching": int(((share > 0) & (share < 1)).sum()),
        "open_share_per_gate": [round(float(s), 4) for s in share],
        "distinct_gate_patterns": len({tuple(row.tolist()) for row in open_}),
    }


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    records = [r for runs in result["table"].values() for r in runs.values()]
    g = records[0]["gates_per_side"]
    lines = [f"LoRSP runs `{s['runs']}/<dataset>/{s['method']}/seed<k>`, first {s['limit']} test images. "
             f"Gates: {g} row and {g} column gates. Switching: open on some images and closed on others.", "",
             "| dataset | seed | closed rows per image | closed columns per image | always open | always closed "
             "| switching | distinct gate patterns |", "|---|---|---|---|---|---|---|---|"]
    fmt = lambda d: f"{d['mean']:.2f} ({d['min']}-{d['max']})"  # noqa: E731
    for dataset, runs in result["table"].items():
        for seed, r in runs.items():
            lines.append(f"| {dataset} | {seed} | {fmt(r['closed_rows'])} | {fmt(r['closed_cols'])} | "
                         f"{r['always_open']} | {r['always_closed']} | {r['switching']} | "
                         f"{r['distinct_gate_patterns']} |")
    lines += ["", f"Switching gates per run: mean {statistics.mean(r['switching'] for r in records):.1f} of "
                  f"{2 * g}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/main", help="the --out of benchmarks/baselines.py")
    p.add_argument("--datasets", nargs="+", default=["mnist-5k", "animal-shape"])
    p.add_argument("--method", default="lorsp-prompt-lr-0.2", help="the LoRSP runs' folder name (method tag)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--limit", type=int, default=500, help="test images per run")
    p.add_argument("--json", default="runs/gate-usage/gate_usage.json")
    args = p.parse_args()
    from lorsp.plumbing.runtime import tune_allocator

    tune_allocator()
    table: dict[str, dict[str, Any]] = {}
    for dataset in args.datasets:
        table[dataset] = {}
        for seed in args.seeds:
            table[dataset][str(seed)] = gate_usage(trained_model(args.runs, dataset, args.method, seed), args.limit)
    result = run_record(args, table=table)
    out = Path(args.json)
    write_tables(out.parent, out.stem, result, markdown(result))


if __name__ == "__main__":
    main()
