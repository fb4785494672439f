"""Where can a trained dense prompt be switched off? Zero masks of several shapes applied to one trained prompt.

    python benchmarks/prompt_masks.py --runs runs/main --datasets mnist-5k sklearn-digits \
        --method lorsp-prompt-lr-0.1_rank-8_relay-open --seed 0 --json docs/data/diagnostics/masks-seed0.json

Each trained run (``RUNS/DATASET/METHOD/seedS/model.pt``, as ``benchmarks/baselines.py`` writes them; meant for
LoRSP's dense twin, ``--relay open``, or any method whose prompt is one image-independent tensor) classifies the
first ``--limit-test`` test images with its own backbone and head, its prompt ``P`` multiplied by a zero mask
``M`` (``x + M P``), the masks not trained:

* ``dense``: ``M = 1``; ``none``: ``M = 0``; ``scaled``: ``M = --keep`` everywhere (the same mean amplitude as
  the masks below that keep that share, without zeros);
* ``random blocks G``: per image, each cell of a ``G x G`` grid kept with probability ``--keep``;
* ``static blocks 4``: one such ``4 x 4`` mask for every image;
* ``random pixels``: per image, each pixel kept with probability ``--keep``;
* ``content t``: per image, the pixels whose grey value is more than ``t`` from the image's mean (its content,
  as the ``bands`` encoding measures it), and ``content t, other image``: another image's such mask (a fixed
  seeded permutation that moves every image).

``benchmarks/masked_prompt.py`` asks the same of a prompt under the trained masks of other runs, each judged by
a head refit on its features; this script keeps the model's own head and lays masks no run learned.

A mask that keeps the accuracy of ``dense`` at a given share of zeros shows where sparsity costs nothing; a
content mask that beats another image's shows that where a prompt acts depends on the image. Seeded
(``--mask-seed``), so a rerun gives the same figures on the same machine.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.output import fail  # noqa: E402
from benchmarks.prompt_diagnostics import (batched, derangement, load_run, scoring_parser,  # noqa: E402
                                          test_images, write_rows)
from lorsp.plumbing.errors import LorspError  # noqa: E402

CONTENT_THRESHOLDS = (0.1, 0.3)


def block_masks(n: int, grid: int, keep: float, size: int, generator: "Any") -> "Any":
    """``(n, 1, size, size)`` masks: each cell of a ``grid x grid`` partition kept (1) with probability ``keep``."""
    import torch
    import torch.nn.functional as F

    cells = (torch.rand(n, 1, grid, grid, generator=generator) < keep).float()
    return F.interpolate(cells, size=(size, size), mode="nearest")


def content_masks(x: "Any", threshold: float) -> "Any":
    """``(N, 1, L, L)``: 1 where an image's grey value is more than ``threshold`` from its own mean."""
    grey = x.mean(1, keepdim=True)
    return ((grey - grey.mean((2, 3), keepdim=True)).abs() > threshold).float()


def masks(x: "Any", keep: float, seed: int) -> dict[str, "Any"]:
    """The masks of the module docstring for images ``x``, by name (each broadcasts over ``(N, 3, L, L)``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n, size = len(x), x.shape[-1]
    out = {"dense": torch.ones(1, 1, size, size), "none": torch.zeros(1, 1, size, size),
           "scaled": torch.full((1, 1, size, size), keep)}
    for grid in (4, 16, 64):
        if grid <= size:
            out[f"random blocks {grid}"] = block_masks(n, grid, keep, size, g)
    out["static blocks 4"] = block_masks(1, min(4, size), keep, size, g)
    out["random pixels"] = (torch.rand(n, 1, size, size, generator=g) < keep).float()
    other = derangement(n, seed)
    for t in CONTENT_THRESHOLDS:
        own = content_masks(x, t)
        out[f"content {t}"] = own
        out[f"content {t}, other image"] = own[other]
    return out


def score_masks(model: "Any", x: "Any", y: "Any", keep: float, seed: int) -> list[dict[str, Any]]:
    """For each mask: test accuracy (0-1) of ``x + M P(x)`` and the share of prompt pixels ``M`` zeroes."""
    model = model.eval()
    prompt = batched(model.prompt, x)
    rows = []
    for name, m in masks(x, keep, seed).items():
        m = m.expand(len(x), 1, *x.shape[-2:])
        logits = batched(model.classify, x + m * prompt)
        rows.append({"mask": name, "accuracy": float((logits.argmax(1) == y).float().mean()),
                     "zero_share": float((m == 0).float().mean())})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per data set and mask: accuracy (%) and the share of zeros (%)."""
    lines = ["| data set | method | seed | mask | test accuracy (%) | zeros (%) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['method']} | {r['seed']} | {r['mask']} | {100 * r['accuracy']:.1f} | "
              f"{100 * r['zero_share']:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = scoring_parser(__doc__, limit_test=500)
    p.add_argument("--method", required=True, help="run name, as benchmarks/baselines.py writes it")
    p.add_argument("--seed", type=int, default=0, help="the run's training seed")
    p.add_argument("--keep", type=float, default=0.4, help="share of cells or pixels the random masks keep")
    p.add_argument("--mask-seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.limit_test < 2:
        fail("--limit-test must be at least 2 (another image's mask needs two)")
    if not 0.0 < args.keep < 1.0:
        fail(f"--keep must be in (0, 1), got {args.keep}")
    rows = []
    try:
        for dataset in args.datasets:
            model = load_run(Path(args.runs), dataset, args.method, args.seed)
            x, y = test_images(model, args.limit_test)
            for row in score_masks(model, x, y, args.keep, args.mask_seed):
                rows.append({"dataset": dataset, "method": args.method, "seed": args.seed, "n": len(y), **row})
                print(f"{dataset}  {row['mask']:28s} {100 * row['accuracy']:5.1f}  zeros "
                      f"{100 * row['zero_share']:5.1f}%", flush=True)
    except LorspError as e:
        fail(str(e))
    write_rows(args, rows, markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
