"""How large a trained prompt is, and how much gradient its factors get at the start.

    python benchmarks/prompt_scale.py --models runs/main/sklearn-digits/lorvp-prompt-lr-0.2/seed0/model.pt \
        runs/main/sklearn-digits/lorsp-prompt-lr-0.2_rank-8/seed0/model.pt
    python benchmarks/prompt_scale.py --start-gradient --dataset sklearn-digits --methods lorvp lorsp:rank=8

``--models``: for each trained run, on the first ``--limit`` test images of its data set, the
largest absolute prompt value and the mean absolute value over the pixels where the prompt is
not zero, beside the images' standard deviation. ``--start-gradient``: for each method at its
start (LoRSP calibrated as in training, on the first 64 training images), the norm of the
cross-entropy gradient on the factor ``B`` for one batch of ``--batch-size`` training images
(``B`` starts at zero, so it is the first factor to move). Reads runs, never trains; prints
one line per model or method and, with ``--json``, writes them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import parse_method  # noqa: E402
from benchmarks.output import fail, run_record  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402
from lorsp.plumbing.fileio import write_json  # noqa: E402


def trained_scale(model_path: Path, limit: int) -> dict[str, Any]:
    """Prompt magnitude of one trained run on its first ``limit`` test images."""
    import torch

    from lorsp.data import create_splits
    from lorsp.model import load

    model = load(model_path).eval()
    config = model.config
    splits = create_splits(config["dataset"], config["image_size"], limit_train=1, limit_test=limit)
    x = torch.stack([splits.test[i][0] for i in range(min(limit, len(splits.test)))])
    with torch.no_grad():
        prompt = model.prompt(x)
    open_values = prompt[prompt != 0].abs()
    return {"model": str(model_path), "dataset": config["dataset"], "prompt": config["prompt"],
            "images": len(x), "prompt_abs_max": float(prompt.abs().max()),
            "prompt_abs_mean_open": float(open_values.mean()) if open_values.numel() else 0.0,
            "image_std": float(x.std())}


def start_gradient(dataset: str, spec: str, batch_size: int, seed: int, image_size: int) -> dict[str, Any]:
    """Norm of the gradient on ``B`` at the start of ``spec`` (``METHOD[:options]``) for one training batch."""
    import torch

    from benchmarks.baselines import check_train_argv
    from lorsp.data import create_splits
    from lorsp.model import build_model

    name, extra, _ = parse_method(spec)
    cfg = check_train_argv(["--dataset", dataset, "--prompt", name, "--image-size", str(image_size),
                            "--seed", str(seed), "--limit-train", "1000", "--out", "unused", *extra])
    torch.manual_seed(seed)
    splits = create_splits(dataset, image_size, limit_train=1000, limit_test=1, shot_seed=seed)
    model = build_model(cfg.to_dict(), splits.classes)
    if model.prompt.calibrates:
        model.prompt.calibrate(torch.stack([splits.train[i][0] for i in range(min(64, len(splits.train)))]))
    model.eval()
    x = torch.stack([splits.train[i][0] for i in range(batch_size)])
    y = torch.tensor([int(splits.train[i][1]) for i in range(batch_size)])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grad = model.prompt.B.grad
    return {"method": spec, "dataset": dataset, "batch_size": batch_size, "b_entries": grad.numel(),
            "b_gradient_norm": float(grad.norm())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=[], help="trained runs' model.pt")
    p.add_argument("--limit", type=int, default=64, help="test images per model")
    p.add_argument("--start-gradient", action="store_true")
    p.add_argument("--dataset", default="sklearn-digits")
    p.add_argument("--methods", nargs="+", default=["lorvp", "lorsp:rank=8"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    if not args.models and not args.start_gradient:
        fail("nothing to measure: name --models or --start-gradient")
    rows: list[dict[str, Any]] = []
    try:
        for path in args.models:
            if not Path(path).is_file():
                fail(f"no such model: {path}")
            r = trained_scale(Path(path), args.limit)
            rows.append(r)
            print(f"{path}: max |P| {r['prompt_abs_max']:.3f}, mean |P| where open {r['prompt_abs_mean_open']:.4f}, "
                  f"image std {r['image_std']:.3f}")
        if args.start_gradient:
            for spec in args.methods:
                r = start_gradient(args.dataset, spec, args.batch_size, args.seed, args.image_size)
                rows.append(r)
                print(f"{spec} on {args.dataset}: |grad B| {r['b_gradient_norm']:.4f} over {r['b_entries']} entries")
    except LorspError as e:
        fail(str(e))
    if args.json:
        write_json(Path(args.json), run_record(args, rows=rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
