"""Does a trained prompt help, and does its per-image part? Each model scored with its own head on variants.

    python benchmarks/prompt_diagnostics.py --runs runs/main --datasets mnist-5k sklearn-digits \
        --methods none lorvp-prompt-lr-0.2 lorsp-prompt-lr-0.1_rank-8 smm-prompt-lr-0.02 --seeds 0 \
        --json docs/data/diagnostics/diagnostics.json

For every trained run (``RUNS/DATASET/METHOD/seedS/model.pt``, as ``benchmarks/baselines.py`` writes
them) the first ``--limit-test`` test images are classified by the run's own backbone and head
under each variant of its prompt:

* ``own``: ``x + P(x)``, the model as trained;
* ``none``: ``x``, no prompt (same head);
* ``other``: ``x + P(x')``, another test image's prompt (``x'`` by a fixed permutation, seeded with
  ``--perm-seed``, that moves every image);
* ``mean``: ``x + mean_n P(x_n)``, one static prompt, the mean over the scored images;

and, for a prompt with a chip part (LoRSP):

* ``gates open``: every gate open (``P`` from rates of 1: the factors' whole low-rank prompt);
* ``generator reset``: the trained factors and head with the generator as it was at the run's start
  (rebuilt by the trainer's own build stage: the same seed and calibration).

A static prompt scores the same with ``own``, ``other`` and ``mean``; a prompt whose per-image part
helps scores better with ``own``. A spiking generator that learned something useful scores better
than its reset. Prints one line per run; with ``--json`` writes every row with the settings and
the machine, and a Markdown table beside it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.output import fail, run_record, write_tables  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402

BATCH = 100
VARIANTS = ("own", "none", "other", "mean", "gates open", "generator reset")


def derangement(n: int, seed: int) -> "Any":
    """A seeded permutation of ``range(n)`` with no fixed point (a cyclic shift of a random order; n >= 2)."""
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    moved = torch.empty_like(order)
    moved[order] = order.roll(1)
    return moved


def batched(fn: Callable, x: "Any") -> "Any":
    """``fn`` over ``x`` in batches of :data:`BATCH`, without gradients, concatenated."""
    import torch

    with torch.no_grad():
        return torch.cat([fn(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def generator_at_start(model: "Any") -> "Any":
    """``model`` with its prompt's generator as it was at the run's start (the trainer's build stage, same
    seed and calibration), its other trained tensors and head kept."""
    import torch

    from lorsp.config import train_config_class
    from lorsp.plumbing.precision import precision_for
    from lorsp.train.distributed import Dist
    from lorsp.train.stages import build

    config = train_config_class().from_stored(model.config)
    start = build(config, None, Dist(), precision_for(config.precision, torch.device("cpu"))).model
    trained = model.prompt.state_dict()
    state = {k: (v if k.startswith("spiking_generator.") else trained[k]) for k, v in start.prompt.state_dict().items()}
    start.prompt.load_state_dict(state)
    start.head.load_state_dict(model.head.state_dict())
    return start.eval()


def diagnose(model: "Any", x: "Any", y: "Any", perm_seed: int = 0) -> dict[str, float]:
    """Test accuracy (0-1) of ``model`` on images ``x``, labels ``y`` under each prompt variant (module docstring)
    and the share of exactly-zero prompt pixels of ``own``."""
    import torch

    from lorsp.metrics import zero_masks

    model = model.eval()
    prompts = batched(model.prompt, x)
    other = prompts[derangement(len(x), perm_seed)]
    prompted = {"own": x + prompts, "none": x, "other": x + other, "mean": x + prompts.mean(0, keepdim=True)}
    if model.prompt.chip_part:
        open_prompt = model.prompt.prompt_from_rates(torch.ones(1, model.prompt.n_gates))
        prompted["gates open"] = x + open_prompt
        start = generator_at_start(model)
        prompted["generator reset"] = x + batched(start.prompt, x)
    scores = {name: float((batched(model.classify, images).argmax(1) == y).float().mean())
              for name, images in prompted.items()}
    return {**scores, "zero_prompt_pixels": float(zero_masks(prompts).float().mean())}


def load_run(runs: Path, dataset: str, method: str, seed: int) -> "Any":
    from lorsp.model import load

    path = runs / dataset / method / f"seed{seed}" / "model.pt"
    if not path.is_file():
        raise LorspError(f"no such model: {path}")
    return load(path)


def test_images(model: "Any", limit: int) -> tuple["Any", "Any"]:
    """The first ``limit`` test images of the model's own data set, at its image size, and their labels."""
    from lorsp.data import load_split_images

    return load_split_images(model.config["dataset"], model.config["image_size"], limit)


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per run: accuracy (%) under each variant, and the prompt's zero share."""
    lines = ["| dataset | method | seed | " + " | ".join(VARIANTS) + " | zero pixels (%) |",
             "|---|---|---|" + "---|" * (len(VARIANTS) + 1)]
    for r in rows:
        cells = [f"{100 * r[v]:.1f}" if v in r else "-" for v in VARIANTS]
        lines.append(f"| {r['dataset']} | {r['method']} | {r['seed']} | " + " | ".join(cells)
                     + f" | {100 * r['zero_prompt_pixels']:.1f} |")
    return "\n".join(lines) + "\n"


def scoring_parser(description: str, limit_test: int) -> argparse.ArgumentParser:
    """The options of a script that scores trained runs on their test images: ``--runs``, ``--datasets``,
    ``--limit-test`` (default ``limit_test``) and ``--json``; the allocator tuned first."""
    from lorsp.plumbing.runtime import tune_allocator

    tune_allocator()
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/main", help="the benchmarks' run folder")
    p.add_argument("--datasets", nargs="+", default=["mnist-5k"])
    p.add_argument("--limit-test", type=int, default=limit_test)
    p.add_argument("--json", help="write the rows here (and a Markdown table beside it)")
    return p


def write_rows(args: argparse.Namespace, rows: list[dict[str, Any]], text: str) -> None:
    """With ``--json``: the rows (with the settings and the machine) there, and ``text`` beside it as Markdown."""
    if args.json:
        out = Path(args.json)
        write_tables(out.parent, out.stem, run_record(args, rows=rows), text)


def main(argv: list[str] | None = None) -> int:
    p = scoring_parser(__doc__, limit_test=1000)
    p.add_argument("--methods", nargs="+", required=True, help="run names, as benchmarks/baselines.py writes them")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--perm-seed", type=int, default=0, help="seed of the permutation that gives each image another's")
    args = p.parse_args(argv)
    if args.limit_test < 2:
        fail("--limit-test must be at least 2 (another image's prompt needs two)")
    rows = []
    try:
        for dataset in args.datasets:
            for method in args.methods:
                for seed in args.seeds:
                    model = load_run(Path(args.runs), dataset, method, seed)
                    x, y = test_images(model, args.limit_test)
                    row = {"dataset": dataset, "method": method, "seed": seed, "n": len(y),
                           **diagnose(model, x, y, args.perm_seed)}
                    rows.append(row)
                    print("  ".join(f"{k} {100 * v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in row.items()), flush=True)
    except LorspError as e:
        fail(str(e))
    write_rows(args, rows, markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
