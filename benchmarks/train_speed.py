"""Training-step throughput per method, with and without the allocator fix, in one run.

    python benchmarks/train_speed.py [--image-size 128] [--batch-size 64] [--steps 20]

Each measurement runs in a fresh subprocess (the allocator setting is process-wide and
cannot be undone): real mnist-5k images, EfficientNet-Lite0, one full training step
(forward, backward to the prompt and head, SGD update), timed over ``--steps`` steps after
two warm-up steps. "without" clears LORSP_MALLOC_TUNING and glibc's MALLOC_* variables;
"with" applies :func:`lorsp.runtime.tune_allocator`. Prints images/s and the ratios, and
writes JSON with ``--json FILE``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(prompt: str, image_size: int, batch_size: int, steps: int) -> float:
    """Images per second of training steps, in this process."""
    import torch
    import torch.nn.functional as F

    from lorsp.data import create_splits
    from lorsp.model import build_model
    from lorsp.train import TrainConfig

    torch.manual_seed(0)
    splits = create_splits("mnist-5k", image_size, limit_train=batch_size)
    x = torch.stack([splits.train[i][0] for i in range(batch_size)])
    y = torch.tensor(splits.train.targets[:batch_size])
    cfg = TrainConfig(prompt=prompt, image_size=image_size)
    model = build_model(cfg.to_dict(), splits.classes).train()
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def measure_in_subprocess(prompt: str, tuned: bool, args: argparse.Namespace) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["LORSP_MALLOC_TUNING"] = "1" if tuned else "0"
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from lorsp.runtime import tune_allocator; "
            f"tune_allocator(); from benchmarks.train_speed import measure; "
            f"print(measure({prompt!r}, {args.image_size}, {args.batch_size}, {args.steps}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["none", "vp", "lorvp", "lorsp"])
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from lorsp.provenance import machine

    rows = {}
    for method in args.methods:
        rows[method] = {"without_fix": measure_in_subprocess(method, False, args),
                        "with_fix": measure_in_subprocess(method, True, args)}
    base = rows[args.methods[0]]["with_fix"]
    print(f"training step, EfficientNet-Lite0, {args.image_size} px, batch {args.batch_size}, "
          f"{args.steps} steps; {machine()}")
    print(f"{'method':8s} {'without fix':>12s} {'with fix':>10s} {'fix gain':>9s} {'vs ' + args.methods[0]:>9s}")
    for method, r in rows.items():
        r["fix_gain"] = r["with_fix"] / r["without_fix"]
        r["ratio_to_" + args.methods[0]] = r["with_fix"] / base
        print(f"{method:8s} {r['without_fix']:10.1f}/s {r['with_fix']:8.1f}/s {r['fix_gain']:8.2f}x "
              f"{r['ratio_to_' + args.methods[0]]:8.2f}x")
    if "lorsp" in rows and "lorvp" in rows:
        ratio = rows["lorvp"]["with_fix"] / rows["lorsp"]["with_fix"]
        print(f"LoRSP step time / LoR-VP step time: {ratio:.3f} (target <= 1.1)")
        rows["lorsp"]["step_time_vs_lorvp"] = ratio
    if args.json:
        from lorsp.fileio import write_json

        write_json(args.json, {"settings": vars(args), "machine": machine(), "images_per_s": rows})


if __name__ == "__main__":
    main()
