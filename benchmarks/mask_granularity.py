"""How fine must a mask be to zero half of a trained dense prompt for free? Static masks on LoRSP's dense twin.

    python benchmarks/mask_granularity.py --runs runs/main --datasets fashion-mnist mnist-5k animal-shape \
        opencv-digits sklearn-digits --method lorsp-prompt-lr-0.1_rank-8_relay-open --seed 0 \
        --json docs/data/diagnostics/mask-granularity-seed0.json

For each data set, the trained run ``--method`` (a dense prompt, the same for every image: LoRSP's dense
twin, ``--relay open``) is scored with its own head on its first ``--limit-test`` test images under its
prompt ``P`` multiplied by static masks that each keep half of the pixels (nothing is retrained):

* ``magnitude, cell c``: the cells of ``c x c`` pixels whose mean of ``sum_c |P_c|`` is in the upper half
  (``c = 1``: the pixels where the prompt is strongest);
* ``random, cell c``: a seeded random half of the ``c x c`` cells;
* ``comb``: every other row (band gating's comb layout at its finest);
* ``dense`` and ``none`` for reference.

The question it answers (docs/method.md, "Pixel gating"): whether zeroing half of a dense prompt must cost
accuracy, and at which granularity it stops costing.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.output import fail  # noqa: E402
from benchmarks.prompt_diagnostics import batched, load_run, scoring_parser, test_images, write_rows  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402

CELLS = (1, 2, 4, 8)


def static_masks(prompt: "Any", seed: int) -> dict[str, "Any"]:
    """The masks of the module docstring, ``(L, L)`` float, for a dense prompt ``(3, L, L)``."""
    import torch
    import torch.nn.functional as F

    side = prompt.shape[-1]
    magnitude = prompt.abs().sum(0)
    gen = torch.Generator().manual_seed(seed)
    masks = {"dense": torch.ones(side, side), "none": torch.zeros(side, side)}
    for cell in CELLS:
        if side % cell:
            continue
        cells = F.avg_pool2d(magnitude[None, None], cell)[0, 0]
        upper = (cells >= cells.flatten().median()).float()
        random_half = (torch.rand(cells.shape, generator=gen) < 0.5).float()
        for name, keep in ((f"magnitude, cell {cell}", upper), (f"random, cell {cell}", random_half)):
            masks[name] = keep.repeat_interleave(cell, 0).repeat_interleave(cell, 1)
    masks["comb"] = (torch.arange(side)[:, None] % 2 == 0).float().expand(side, side)
    return masks


def main(argv: list[str] | None = None) -> int:
    p = scoring_parser(__doc__, limit_test=1000)
    p.add_argument("--method", default="lorsp-prompt-lr-0.1_rank-8_relay-open",
                   help="the dense run (as benchmarks/baselines.py names it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mask-seed", type=int, default=0, help="seed of the random masks")
    args = p.parse_args(argv)
    import torch

    rows = []
    try:
        for dataset in args.datasets:
            model = load_run(Path(args.runs), dataset, args.method, args.seed).eval()
            x, y = test_images(model, args.limit_test)
            with torch.no_grad():
                prompt = model.prompt(x[:1])[0]
            if not torch.equal(batched(model.prompt, x[:8]), prompt.expand(min(8, len(x)), *prompt.shape)):
                raise LorspError(f"{args.method} on {dataset}: its prompt differs between images; give a dense "
                                 f"static prompt (--relay open)")
            row: dict[str, Any] = {"dataset": dataset, "method": args.method, "seed": args.seed, "n": len(y)}
            for name, mask in static_masks(prompt, args.mask_seed).items():
                scores = batched(model.classify, x + prompt * mask).argmax(1)
                row[name] = float((scores == y).float().mean())
                row[f"{name}: kept"] = float(mask.mean())
            rows.append(row)
            print(dataset, "  ".join(f"{k} {100 * v:.1f}" for k, v in row.items()
                                     if isinstance(v, float) and "kept" not in k), flush=True)
    except LorspError as e:
        fail(str(e))
    names = [k for k in rows[0] if isinstance(rows[0][k], float) and "kept" not in k] if rows else []
    lines = ["| dataset | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {r['dataset']} | " + " | ".join(f"{100 * r[n]:.1f}" for n in names) + " |" for r in rows]
    write_rows(args, rows, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
