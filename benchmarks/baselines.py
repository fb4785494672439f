"""Train several methods on several datasets under the one protocol and tabulate them.

    python benchmarks/baselines.py --datasets mnist-5k animal-shape --methods none vp lorvp \
        --seeds 0 --out runs/baselines

Each run is ``lorsp-train`` in a subprocess (its own ``OUT/<dataset>/<method>/seed<k>``; runs
already complete are reused). The table (mean +- std over seeds of val-selected test
accuracy, prompt and head parameters) is written as JSON and Markdown into OUT.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lorsp.fileio import atomic_write, write_json  # noqa: E402
from lorsp.provenance import git_commit, machine  # noqa: E402

METHOD_LABELS = {"none": "linear probe", "vp": "VP (Bahng et al.)", "lorvp": "LoR-VP", "lorsp": "LoRSP"}


def run_one(dataset: str, method: str, seed: int, args: argparse.Namespace) -> dict:
    out = Path(args.out) / dataset / method / f"seed{seed}"
    cmd = ["lorsp-train", "--dataset", dataset, "--backbone", args.backbone, "--prompt", method,
           "--head", "lp", "--rank", str(args.rank), "--image-size", str(args.image_size),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--limit-train", str(args.limit_train), "--limit-test", str(args.limit_test),
           "--seed", str(seed), "--quiet", "--out", str(out)]
    if not (out / "metrics.json").exists():
        print("$", " ".join(cmd), flush=True)
        subprocess.run([sys.executable, "-m", "lorsp.train", *cmd[1:]], check=True, cwd=ROOT)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["command"] = " ".join(cmd)
    return metrics


def summarise(runs: list[dict]) -> dict:
    acc = [r["test_accuracy"] for r in runs]
    return {"test_accuracy_mean": statistics.mean(acc),
            "test_accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "val_accuracy_mean": statistics.mean(r["val_accuracy"] for r in runs),
            "seeds": [r["seed"] for r in runs], "params": runs[0]["params"],
            "train_images_per_s": statistics.mean(r["train_images_per_s"] for r in runs),
            "command": runs[0]["command"].replace(f"--seed {runs[0]['seed']}", "--seed S")}


def markdown(table: dict, args: argparse.Namespace) -> str:
    lines = [f"Backbone {args.backbone}, {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}, "
             f"lr {args.lr}, {args.limit_train} training images, {args.limit_test} test images, "
             f"seeds {args.seeds}; test accuracy of the val-selected model, mean +- std over seeds.",
             "", "| dataset | method | test accuracy | prompt params | head params |",
             "|---|---|---|---|---|"]
    for dataset, methods in table.items():
        for method, s in methods.items():
            lines.append(f"| {dataset} | {METHOD_LABELS.get(method, method)} | "
                         f"{100 * s['test_accuracy_mean']:.1f} +- {100 * s['test_accuracy_std']:.1f} | "
                         f"{s['params']['prompt']:,} | {s['params']['head']:,} |")
    lines += ["", "Commands (S = seed):", ""]
    lines += [f"    {s['command']}" for methods in table.values() for s in methods.values()]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["mnist-5k", "animal-shape"])
    p.add_argument("--methods", nargs="+", default=["none", "vp", "lorvp"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--limit-train", type=int, default=2000)
    p.add_argument("--limit-test", type=int, default=1000)
    p.add_argument("--out", default="runs/baselines")
    args = p.parse_args()
    table = {d: {m: summarise([run_one(d, m, s, args) for s in args.seeds]) for m in args.methods}
             for d in args.datasets}
    result = {"settings": vars(args), "machine": machine(), "git_commit": git_commit(), "table": table}
    out = Path(args.out)
    write_json(out / "results.json", result)
    text = markdown(table, args)
    atomic_write(out / "results.md", lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
