"""Does a trained dense prompt keep its gain when most of it is zeroed? A head refit on frozen features.

    python benchmarks/masked_prompt.py --runs runs/main --dataset mnist-5k --seed 0 \
        --dense lorvp-prompt-lr-0.2 --masks lorsp-prompt-lr-0.1_rank-8 lorsp-prompt-lr-0.1_rank-8_relay-frame \
        --json docs/data/method-probe/masked-prompt-mnist-5k.json

For one data set and seed, the backbone's features of the training and test images under each
prompt variant below, and a fresh linear head fitted on the training features (multinomial
logistic regression on standardised features, scikit-learn's L-BFGS, the same for every
variant), scored on the test features. The head is refit so that each variant is judged by
what its features allow, not by a head trained with another prompt. Variants:

* ``none``: no prompt (a refit linear probe);
* ``dense``: the ``--dense`` run's trained prompt as it is (LoR-VP's);
* ``dense x s`` for each ``--scales`` s: the same prompt scaled;
* ``dense * mask(M)`` and ``dense * (1 - mask(M))`` for each ``--masks`` run M: the dense prompt
  kept only where M's own prompt is non-zero for that image (or only where it is zero): a
  per-image sparse mask laid over a prompt that was trained dense;
* ``dense * comb``: kept on every other row (a fixed comb, 50% zeros);
* ``own(M)``: M's trained prompt as it is.

Reads trained runs (``RUNS/DATASET/NAME/seedS/model.pt``), never trains a prompt; prints one line
per variant (with its share of exactly-zero prompt pixels on the first 100 test images) and,
with ``--json``, writes them with the settings and the machine. Test images: the first
``--limit-test`` of the split (all of it when it is smaller: sklearn-digits has 359).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.output import fail, run_record  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402
from lorsp.plumbing.fileio import write_json  # noqa: E402

BATCH = 100


def features(model, images, prompt: Callable) -> "Any":
    """The frozen backbone's features of ``images + prompt(images)``, as a numpy array."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(images), BATCH):
            x = images[i:i + BATCH]
            out.append(model.backbone.features(x + prompt(x)))
    return torch.cat(out).numpy()


def refit_accuracy(train_features, train_labels, test_features, test_labels) -> float:
    """Test accuracy of a multinomial logistic regression fitted on standardised training features."""
    from sklearn.linear_model import LogisticRegression

    mean, std = train_features.mean(0), train_features.std(0) + 1e-6
    head = LogisticRegression(max_iter=3000).fit((train_features - mean) / std, train_labels)
    return float(head.score((test_features - mean) / std, test_labels))


def variants(dense, masks: dict[str, Any], scales: list[float], size: int) -> dict[str, Callable]:
    """The prompt of each variant (module docstring), as functions of an image batch."""
    import torch

    def open_where(model, x):
        return (model.prompt(x) != 0).any(1, keepdim=True).to(x.dtype)

    comb = (torch.arange(size) % 2 == 0).to(torch.float32)[:, None]
    out: dict[str, Callable] = {"none": lambda x: torch.zeros_like(x), "dense": lambda x: dense.prompt(x)}
    for s in scales:
        out[f"dense x {s:g}"] = lambda x, s=s: s * dense.prompt(x)
    out["dense * comb"] = lambda x: dense.prompt(x) * comb
    for name, model in masks.items():
        out[f"dense * mask({name})"] = lambda x, m=model: dense.prompt(x) * open_where(m, x)
        out[f"dense * (1 - mask({name}))"] = lambda x, m=model: dense.prompt(x) * (1 - open_where(m, x))
        out[f"own({name})"] = lambda x, m=model: m.prompt(x)
    return out


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np
    import torch

    from lorsp.data import create_splits
    from lorsp.metrics import zero_masks
    from lorsp.model import load

    def run_model(name: str):
        path = Path(args.runs) / args.dataset / name / f"seed{args.seed}" / "model.pt"
        if not path.is_file():
            fail(f"no such model: {path}")
        return load(path).eval()

    dense = run_model(args.dense)
    masks = {name: run_model(name) for name in args.masks}
    config = dense.config
    for name, model in masks.items():
        for key in ("dataset", "image_size", "backbone"):
            if model.config.get(key) != config.get(key):
                fail(f"{name} was trained with {key} {model.config.get(key)}, {args.dense} with {config.get(key)}: "
                     f"a mask must come from a run like the dense one")
    splits = create_splits(config["dataset"], config["image_size"], limit_train=args.limit_train,
                           limit_test=args.limit_test, shot_seed=args.seed)

    def stack(split):
        return (torch.stack([split[i][0] for i in range(len(split))]),
                np.array([int(split[i][1]) for i in range(len(split))]))

    (x_train, y_train), (x_test, y_test) = stack(splits.train), stack(splits.test)
    rows = []
    for name, prompt in variants(dense, masks, args.scales, config["image_size"]).items():
        accuracy = refit_accuracy(features(dense, x_train, prompt), y_train, features(dense, x_test, prompt), y_test)
        with torch.no_grad():
            zeros = float(zero_masks(prompt(x_test[:BATCH])).float().mean())
        rows.append({"variant": name, "refit_test_accuracy": accuracy, "zero_prompt_pixels_first_100": zeros})
        print(f"{name:48s} refit test {100 * accuracy:5.1f}%  zeros {100 * zeros:5.1f}%", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from lorsp.plumbing.runtime import tune_allocator

    tune_allocator()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/main", help="the benchmarks' run folder")
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense", default="lorvp-prompt-lr-0.2", help="the dense prompt's run name")
    p.add_argument("--masks", nargs="*", default=["lorsp-prompt-lr-0.1_rank-8"],
                   help="runs whose per-image zero masks are laid over the dense prompt")
    p.add_argument("--scales", type=float, nargs="*", default=[0.3])
    p.add_argument("--limit-train", type=int, default=1000)
    p.add_argument("--limit-test", type=int, default=1000)
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.limit_train < 1 or args.limit_test < 1:
        fail("--limit-train and --limit-test must be at least 1")
    try:
        rows = measure(args)
    except LorspError as e:
        fail(str(e))
    if args.json:
        write_json(Path(args.json), run_record(args, rows=rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
