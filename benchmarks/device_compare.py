"""The same lorsp-train run on two devices, side by side: what differs, and by how much.

    python benchmarks/device_compare.py --pairs RUN_ON_CUDA RUN_ON_CPU [RUN_A RUN_B ...] --json OUT.json

Each pair is two finished run directories with the same config (same seed, data and options; only
``--device`` differed). Reported per pair: each run's device, test and val accuracy, the epoch
chosen, the training loss per epoch, LoRSP's prompt sparsity and firing rate, training images/s,
and the largest difference between the two trained prompts' and heads' tensors. The same config
is checked first (a pair that differs in more than the device is refused in one line).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.output import run_record, write_tables  # noqa: E402
from lorsp.plumbing.cli import run_cli  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402


def read_run(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A finished run's metrics.json and model.pt (weights_only)."""
    from lorsp.model import read_checkpoint

    metrics_path = path / "metrics.json"
    if not metrics_path.is_file():
        raise LorspError(f"{path} is not a finished lorsp-train run (no metrics.json)")
    return json.loads(metrics_path.read_text()), read_checkpoint(path / "model.pt")


def largest_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """The largest absolute difference between two state dicts of the same tensors."""
    return max((float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].numel()), default=0.0)


def compare(path_a: Path, path_b: Path) -> dict[str, Any]:
    """The figures of one pair (see the module's docstring)."""
    (ma, ca), (mb, cb) = read_run(path_a), read_run(path_b)
    if ca["config"] != cb["config"]:
        differing = sorted(k for k in ca["config"] if ca["config"].get(k) != cb["config"].get(k))
        raise LorspError(f"{path_a} and {path_b} are not the same run: their configs differ in {', '.join(differing)}")

    def side(m: dict[str, Any], path: Path) -> dict[str, Any]:
        return {"run": str(path), "device": m.get("device", "cpu"), "test_accuracy": m["test_accuracy"],
                "val_accuracy": m["val_accuracy"], "best_epoch": m["best_epoch"],
                "train_loss": [h["train_loss"] for h in m["history"]],
                "prompt_sparsity": m.get("prompt_sparsity"),
                "firing_rate": (m.get("firing_rate") or {}).get("overall"),
                "train_images_per_s": m["train_images_per_s"], "versions": m.get("versions")}

    a, b = side(ma, path_a), side(mb, path_b)
    return {"prompt": ma["prompt"], "seed": ma["seed"], "a": a, "b": b,
            "test_accuracy_difference": a["test_accuracy"] - b["test_accuracy"],
            "train_loss_largest_difference": max(abs(x - y) for x, y in zip(a["train_loss"], b["train_loss"])),
            "prompt_tensors_largest_difference": largest_difference(ca["prompt"], cb["prompt"]),
            "head_tensors_largest_difference": largest_difference(ca["head"], cb["head"])}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| method | seed | device | test accuracy (%) | val (%) | epoch | last train loss | zero prompt (%) | "
             "firing rate | images/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for pair in result["pairs"]:
        for s in (pair["a"], pair["b"]):
            sparsity = "-" if s["prompt_sparsity"] is None else f"{100 * s['prompt_sparsity']:.1f}"
            rate = "-" if s["firing_rate"] is None else f"{s['firing_rate']:.4f}"
            lines.append(f"| {pair['prompt']} | {pair['seed']} | {s['device']} | {100 * s['test_accuracy']:.1f} | "
                         f"{100 * s['val_accuracy']:.1f} | {s['best_epoch']} | {s['train_loss'][-1]:.4f} | {sparsity} | "
                         f"{rate} | {s['train_images_per_s']:.0f} |")
        notes.append(f"{pair['prompt']}: test accuracy {100 * pair['test_accuracy_difference']:+.1f} points, "
                     f"train loss at most {pair['train_loss_largest_difference']:.2e} apart, prompt tensors "
                     f"{pair['prompt_tensors_largest_difference']:.2e}, head {pair['head_tensors_largest_difference']:.2e}")
    return "\n".join(lines + ["", *notes]) + "\n"


@run_cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", nargs="+", required=True, metavar="RUN", help="run directories, two by two")
    p.add_argument("--out", default="runs/device-compare", help="writes OUT/device_compare.json and .md")
    args = p.parse_args(argv)
    if len(args.pairs) % 2:
        raise LorspError(f"--pairs takes run directories two by two, got {len(args.pairs)}")
    pairs = [compare(Path(a), Path(b)) for a, b in zip(args.pairs[::2], args.pairs[1::2])]
    result = run_record(args, pairs=pairs)
    write_tables(args.out, "device_compare", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
