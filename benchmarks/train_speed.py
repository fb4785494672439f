"""Training-step throughput per method, with and without the allocator fix, in one run.

    python benchmarks/train_speed.py [--image-size 128] [--batch-size 64] [--steps 4] [--rounds 5]

Real mnist-5k images, EfficientNet-Lite0, one full training step (forward, backward to
the prompt and head, SGD update), two warm-up steps, then ``--rounds`` rounds of
``--steps`` timed steps; the median round is reported. Two kinds of fresh subprocess:

- the allocator fix: one process per method and setting, since glibc's setting is
  process-wide and, without the fix, its mmap threshold moves with what the process
  allocated before ("without" clears LORSP_MALLOC_TUNING and glibc's MALLOC_* variables;
  "with" applies :func:`lorsp.plumbing.runtime.tune_allocator`);
- LoRSP's step time against LoR-VP's: one process with the fix that builds every method
  and times them in interleaved rounds, the order rotated each round, so a slow spell of
  the machine falls on all methods alike (the ratio of the medians, with the range of the
  per-round ratios).

``--baseline REV`` adds the before/after of a speed change in the same run: the interleaved measurement of
the code at git revision REV (``git archive`` into a temporary folder) and of this tree, alternated in fresh
processes; reported as this tree's images/s over REV's and each tree's LoRSP/LoR-VP step-time ratio.

Writes JSON with ``--json FILE``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import parse_method  # noqa: E402
from benchmarks.output import fail, run_record  # noqa: E402
from lorsp.prompts import list_prompts  # noqa: E402

if TYPE_CHECKING:
    from lorsp.train import TrainConfig

TARGET_STEP_RATIO = 1.2
"""LoRSP's training step may take at most this many times LoR-VP's (issue 30's bound; an earlier issue's was 1.1
for band gating)."""


def method_config(spec: str, image_size: int) -> TrainConfig:
    """The training config of a method spec as benchmarks/baselines.py writes it (``lorsp:gate=pixel,...``)."""
    from lorsp.train.cli import build_parser, config_from_args

    name, extra, _ = parse_method(spec)
    return config_from_args(build_parser().parse_args(["--prompt", name, "--image-size", str(image_size),
                                                       "--out", "unused", *extra]))


def measure_rounds(methods: list[str], image_size: int, batch_size: int, steps: int,
                   rounds: int) -> dict[str, list[float]]:
    """Images per second of training steps, per method and round, in this process."""
    import torch
    import torch.nn.functional as F

    from lorsp.data import create_splits
    from lorsp.model import build_model

    torch.manual_seed(0)
    splits = create_splits("mnist-5k", image_size, limit_train=batch_size)
    x = torch.stack([splits.train[i][0] for i in range(batch_size)])
    y = torch.tensor(splits.train.targets[:batch_size])
    steppers = {}
    for method in methods:
        model = build_model(method_config(method, image_size).to_dict(), splits.classes).train()
        opt = torch.optim.SGD(model.trainable_parameters(), lr=0.01, momentum=0.9)

        def step(model=model, opt=opt) -> None:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(2):
            step()
        steppers[method] = step
    rates: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(rounds):
        for method in methods[r % len(methods):] + methods[:r % len(methods)]:
            start = time.perf_counter()
            for _ in range(steps):
                steppers[method]()
            rates[method].append(steps * batch_size / (time.perf_counter() - start))
    return rates


def measure_in_subprocess(methods: list[str], tuned: bool, args: argparse.Namespace,
                          root: Path = ROOT) -> dict[str, list[float]]:
    """:func:`measure_rounds` in a fresh process with the allocator fix on or off, of the code under ``root``
    (a checkout of another revision for ``--baseline``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["LORSP_MALLOC_TUNING"] = "1" if tuned else "0"
    code = (f"import sys, json; sys.path.insert(0, {str(root)!r}); from lorsp.plumbing.runtime import tune_allocator; "
            f"tune_allocator(); from benchmarks.train_speed import measure_rounds; "
            f"print(json.dumps(measure_rounds({list(methods)!r}, {args.image_size}, {args.batch_size}, "
            f"{args.steps}, {args.rounds})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def checkout(revision: str, folder: Path) -> Path:
    """The repository's files at git ``revision`` written into ``folder`` (``git archive``); ``folder``."""
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=ROOT, capture_output=True,
                                 check=True).stdout
    except subprocess.CalledProcessError as e:
        fail(f"--baseline {revision}: git archive failed: {(e.stderr.decode().strip().splitlines() or ['?'])[-1]}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def against_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """LoRSP's training step now against the same methods at ``args.baseline``: the interleaved measurement of
    both trees, alternated ``args.baseline_alternations`` times (each tree's own LoRSP/LoR-VP ratio is immune
    to the machine's load; the images/s of the two trees are pooled over the alternations)."""
    now: dict[str, list[float]] = {m: [] for m in args.methods}
    then: dict[str, list[float]] = {m: [] for m in args.methods}
    with tempfile.TemporaryDirectory() as tmp:
        tree = checkout(args.baseline, Path(tmp))
        for _ in range(args.baseline_alternations):
            for pooled, root in ((then, tree), (now, ROOT)):
                for method, rates in measure_in_subprocess(args.methods, True, args, root).items():
                    pooled[method] += rates
    rows = {"revision": args.baseline, "alternations": args.baseline_alternations,
            "images_per_s_now": now, "images_per_s_then": then}
    for method in args.methods:
        rows.setdefault("now_over_then", {})[method] = statistics.median(now[method]) / statistics.median(then[method])
    lorvp = next((m for m in args.methods if parse_method(m)[0] == "lorvp"), None)
    if lorvp is not None:
        for method in (m for m in args.methods if parse_method(m)[0] == "lorsp"):
            rows.setdefault("step_time_vs_lorvp", {})[method] = {
                "now": statistics.median(now[lorvp]) / statistics.median(now[method]),
                "then": statistics.median(then[lorvp]) / statistics.median(then[method])}
    return rows


def summarise(without: dict[str, list[float]], with_fix: dict[str, list[float]],
              interleaved: dict[str, list[float]]) -> dict[str, dict]:
    """Per method: median images/s with and without the fix (each alone in its process), their
    ratio, the ratio to the first method; LoRSP against LoR-VP from the interleaved rounds."""
    methods = list(with_fix)
    base = statistics.median(with_fix[methods[0]])
    rows: dict[str, dict] = {}
    for method in methods:
        r = {"without_fix": statistics.median(without[method]), "with_fix": statistics.median(with_fix[method]),
             "interleaved_with_fix": statistics.median(interleaved[method]),
             "rounds": {"without_fix": without[method], "with_fix": with_fix[method],
                        "interleaved_with_fix": interleaved[method]}}
        r["fix_gain"] = r["with_fix"] / r["without_fix"]
        r["ratio_to_" + methods[0]] = r["with_fix"] / base
        rows[method] = r
    lorvp = next((m for m in methods if parse_method(m)[0] == "lorvp"), None)
    for lorsp in (m for m in methods if parse_method(m)[0] == "lorsp" and lorvp is not None):
        per_round = [a / b for a, b in zip(interleaved[lorvp], interleaved[lorsp])]
        rows[lorsp]["step_time_vs_lorvp"] = rows[lorvp]["interleaved_with_fix"] / rows[lorsp]["interleaved_with_fix"]
        rows[lorsp]["step_time_vs_lorvp_range"] = [min(per_round), max(per_round)]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["none", "vp", "lorvp", "lorsp"],
                   help="methods, each a name or a spec as benchmarks/baselines.py takes it (lorsp:gate=pixel,...)")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=4, help="timed steps per method per round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    p.add_argument("--baseline", default=None, metavar="REV",
                   help="also time the same methods at git revision REV, alternating the two trees' interleaved "
                        "measurements in fresh processes (the before/after of a speed change, in one run)")
    p.add_argument("--baseline-alternations", type=int, default=2, help="with --baseline: alternations of the trees")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    for name in ("image_size", "batch_size", "steps", "rounds", "baseline_alternations"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for spec in args.methods:
        if parse_method(spec)[0] not in list_prompts():
            fail(f"unknown method {spec!r}; choose among {', '.join(list_prompts())} (with options: name:key=value,...)")
    from lorsp.plumbing.provenance import machine

    without, with_fix = {}, {}
    for method in args.methods:
        without.update(measure_in_subprocess([method], False, args))
        with_fix.update(measure_in_subprocess([method], True, args))
    rows = summarise(without, with_fix, measure_in_subprocess(args.methods, True, args))
    first = args.methods[0]
    print(f"training step, EfficientNet-Lite0, {args.image_size} px, batch {args.batch_size}, "
          f"median of {args.rounds} rounds of {args.steps} steps; {machine()}")
    print(f"{'method':8s} {'without fix':>12s} {'with fix':>10s} {'fix gain':>9s} {'vs ' + first:>9s}")
    for method, r in rows.items():
        print(f"{method:8s} {r['without_fix']:10.1f}/s {r['with_fix']:8.1f}/s {r['fix_gain']:8.2f}x "
              f"{r['ratio_to_' + first]:8.2f}x")
    for method, r in rows.items():
        if "step_time_vs_lorvp" in r:
            lo, hi = r["step_time_vs_lorvp_range"]
            print(f"{method} step time / LoR-VP step time: {r['step_time_vs_lorvp']:.3f} "
                  f"(rounds {lo:.3f}-{hi:.3f}; target <= {TARGET_STEP_RATIO})")
    baseline = against_baseline(args) if args.baseline else None
    if baseline:
        for method, ratio in baseline["now_over_then"].items():
            print(f"{method}: {ratio:.3f}x the images/s of {args.baseline} (pooled over {args.baseline_alternations} "
                  "alternations)")
        for method, r in baseline.get("step_time_vs_lorvp", {}).items():
            print(f"{method} step time / LoR-VP step time: {r['now']:.3f} now, {r['then']:.3f} at {args.baseline}")
    if args.json:
        from lorsp.plumbing.fileio import write_json

        write_json(args.json, run_record(args, images_per_s=rows, **({"baseline": baseline} if baseline else {})))


if __name__ == "__main__":
    main()
