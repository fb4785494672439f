"""LoRSP accuracy against prompt sparsity: sweep one LoRSP option, LoR-VP as a line.

    python benchmarks/sparsity_sweep.py --dataset mnist-5k --option sparsity-target --values 0.3 0.6 0.8 0.9 \
        --method lorsp:prompt-lr=0.2 --out runs/sweep --figure docs/figures/sparsity_accuracy.png

``--option`` is any ``lorsp-train`` option (the sparsity target, the sparsity weight, the
threshold, ...); ``--method`` is LoRSP's spec (``benchmarks/baselines.py``) the sweep starts
from. Every point is a ``lorsp-train`` run under the protocol of ``benchmarks/baselines.py``
(same options; runs are reused when complete). Writes ``OUT/sweep.json`` and the PNG.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import add_protocol_args, map_runs, parse_method, plan_run, train_run  # noqa: E402
from benchmarks.engine import engine_options  # noqa: E402
from benchmarks.output import run_record  # noqa: E402
from benchmarks.results_plots import pyplot, save_figure  # noqa: E402
from lorsp.plumbing.cli import run_cli  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402
from lorsp.plumbing.fileio import write_json  # noqa: E402


def plot(points: list[dict], option: str, lorvp: dict, path: Path, title: str) -> None:
    fig, ax = pyplot().subplots(figsize=(5.5, 3.8))
    xs = [100 * p["prompt_sparsity"] for p in points]
    ys = [100 * p["test_accuracy"] for p in points]
    ax.plot(xs, ys, "o-", label=f"LoRSP ({option} sweep)")
    for p, x, y in zip(points, xs, ys):
        ax.annotate(f"{p['value']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    lo, hi = lorvp["mean"] - lorvp["std"], lorvp["mean"] + lorvp["std"]
    ax.axhline(100 * lorvp["mean"], color="C1", label="LoR-VP (dense prompt), mean ± std")
    ax.axhspan(100 * lo, 100 * hi, color="C1", alpha=0.15)
    ax.set(xlabel="exactly-zero prompt pixels on the test set (%)", ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


@run_cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--option", default="sparsity-target", help="the lorsp-train option to sweep")
    p.add_argument("--values", nargs="+", type=float, default=[0.3, 0.6, 0.8, 0.9])
    p.add_argument("--method", default="lorsp", help="LoRSP's spec, e.g. lorsp:prompt-lr=0.2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lorvp-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--baselines-out", default="runs/baselines", help="where the LoR-VP runs live (or go)")
    p.add_argument("--lorvp-method", default="lorvp", help="LoR-VP's method spec, e.g. lorvp:prompt-lr=0.2")
    p.add_argument("--figure", default="docs/figures/sparsity_accuracy.png")
    add_protocol_args(p, default_out="runs/sweep")
    args = p.parse_args(argv)
    name, base, base_tag = parse_method(args.method)
    if name != "lorsp":
        raise LorspError(f"--method must be a LoRSP spec, got {args.method!r}")
    sweep = [plan_run(args.dataset, "lorsp", args.seed, args, (*base, f"--{args.option}", f"{v:g}"),
                      tag=f"{base_tag}_{args.option}-{v:g}") for v in args.values]
    baseline_args = argparse.Namespace(**{**vars(args), "out": args.baselines_out})
    name, extra, tag = parse_method(args.lorvp_method)
    lorvp_runs = [plan_run(args.dataset, name, s, baseline_args, extra, tag) for s in args.lorvp_seeds]

    points = []
    for v, m in zip(args.values, map_runs(lambda run: train_run(run, args.jobs), sweep, args.jobs, desc="sweep runs",
                                                   engine=engine_options(args))):
        points.append({"option": args.option, "value": v, "test_accuracy": m["test_accuracy"],
                       "val_accuracy": m["val_accuracy"], "prompt_sparsity": m["prompt_sparsity"],
                       "firing_rate": m["firing_rate"]["overall"], "command": m["command"]})
    accs = [train_run(run)["test_accuracy"] for run in lorvp_runs]
    lorvp = {"mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
             "seeds": args.lorvp_seeds}
    write_json(Path(args.out) / "sweep.json", run_record(args, points=points, lorvp=lorvp))
    plot(points, args.option, lorvp, ROOT / args.figure,
         f"{args.dataset}, {args.backbone}, {args.image_size} px, seed {args.seed}")
    for pt in points:
        print(f"{args.option} {pt['value']:g}: sparsity {pt['prompt_sparsity']:.3f}  test {pt['test_accuracy']:.4f}")
    print(f"LoR-VP: {lorvp['mean']:.4f} +- {lorvp['std']:.4f}; figure {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
