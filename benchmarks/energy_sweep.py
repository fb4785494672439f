"""Test accuracy against the spiking generator's energy per image, sweeping band-gated LoRSP's time steps T
(``--gate band`` as measured, :func:`lorsp.prompts.lorsp.band_flags`, whose relay noise the sweep sets too).

    python benchmarks/energy_sweep.py --dataset mnist-5k --seed 0 --time-steps 4 8 16 \
        --relay-noise 0.05 0 --out runs/energy-sweep --json docs/data/energy-sweep/energy_sweep.json \
        --figure docs/figures/energy_sweep.png

Every point is one ``lorsp-train`` run under benchmarks/baselines.py's protocol (reused when
complete), then ``lorsp-export --target loihi --samples N`` on it, whose chip simulation
prices the generator's operations on every energy table (docs/loihi.md). The figure puts
test accuracy against the generator's energy per image in fixed point on Davies et al.'s
Loihi table, and beside each point the same network's cost run densely in int8 (Horowitz
2014), joined by a line: where the chip point lies left of its int8 point, the spiking
generator is the cheaper way to compute the same gates.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import add_protocol_args, plan_run, train_run  # noqa: E402
from benchmarks.bundles import bundle_is_current  # noqa: E402
from benchmarks.output import run_record  # noqa: E402
from lorsp.plumbing.cli import run_cli  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402
from lorsp.plumbing.fileio import atomic_write, write_json  # noqa: E402
from lorsp.prompts.lorsp import band_flags  # noqa: E402

CHIP_TABLE, DENSE_TABLE = "loihi-davies2018", "horowitz-int8-dense"


def point(dataset: str, seed: int, steps: int, noise: float, args: argparse.Namespace) -> dict[str, Any]:
    """Train (or reuse) one setting, export it for Loihi (simulating it), and read its figures."""
    extra = (*band_flags(), "--time-steps", str(steps), "--relay-noise", f"{noise:g}", "--rank", str(args.lorsp_rank))
    run = plan_run(dataset, "lorsp", seed, args, extra, f"lorsp-T{steps}-noise{noise:g}")
    metrics = train_run(run, args.jobs)
    bundle = run.out.parent / f"{run.out.name}-loihi"
    if not (bundle_is_current(bundle, run.out / "model.pt") and (bundle / "hw_sim" / "report.json").exists()):
        proc = subprocess.run([sys.executable, "-m", "pipeline.export_cli", "--target", "loihi",
                               str(run.out / "model.pt"), "-o", str(bundle), "--samples", str(args.samples),
                               "--quiet", "--force"], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LorspError(f"lorsp-export failed for {run.out}: {proc.stderr.strip().splitlines()[-1:]}")
    report = json.loads((bundle / "hw_sim" / "report.json").read_text())
    fixed = report["runs"]["fixed"]
    energy = {e["table"]: e["total_nj"] for e in fixed["energy"]}
    return {"time_steps": steps, "relay_noise": noise, "test_accuracy": metrics["test_accuracy"],
            "prompt_unique_mask_share": metrics.get("prompt_unique_mask_share"),
            "chip_nj": energy[CHIP_TABLE], "dense_int8_nj": energy[DENSE_TABLE],
            "synops_per_image": fixed["activity"]["synops_total_per_image"],
            "chip_accuracy": fixed["fidelity"]["accuracy_chip"], "spike_agreement": fixed["fidelity"]["spikes"]["overall"],
            "command": metrics["command"]}


def plot(points: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for noise in sorted({p["relay_noise"] for p in points}, reverse=True):
        row = [p for p in points if p["relay_noise"] == noise]
        ax.plot([p["chip_nj"] for p in row], [100 * p["test_accuracy"] for p in row], "o-",
                label=f"spiking generator on Loihi, --relay-noise {noise:g}")
        for p in row:
            ax.plot([p["chip_nj"], p["dense_int8_nj"]], [100 * p["test_accuracy"]] * 2, ":", color="grey")
            ax.plot(p["dense_int8_nj"], 100 * p["test_accuracy"], "s", color="grey")
            ax.annotate(f"T={p['time_steps']}", (p["chip_nj"], 100 * p["test_accuracy"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.plot([], [], "s:", color="grey", label=f"same network dense, int8 ({DENSE_TABLE})")
    ax.set_xscale("log")
    ax.set_xlabel("generator energy per image (nJ, fixed point, Davies et al. 2018)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def title(result: dict[str, Any]) -> str:
    """The figure's title for a sweep's JSON."""
    s = result["settings"]
    return (f"LoRSP (band gating), {s['dataset']}, seed {s['seed']}: accuracy on the test split, "
            f"energy on {s['samples']} test images")


def markdown(result: dict[str, Any]) -> str:
    """The sweep as a table: accuracy, synaptic operations and energy per setting, the dense int8 line beside."""
    samples = result["settings"]["samples"]
    lines = [f"| T | relay noise | test accuracy (%) | chip accuracy, first {samples} test images (%) | spikes equal to "
             "float (%) | synaptic ops / image | generator, chip (nJ) | same network dense int8 (nJ) | chip / dense |",
             "|---|---|---|---|---|---|---|---|---|"]
    for q in result["points"]:
        lines.append(f"| {q['time_steps']} | {q['relay_noise']:g} | {100 * q['test_accuracy']:.1f} | "
                     f"{100 * q['chip_accuracy']:.1f} | {100 * q['spike_agreement']:.4f} | {q['synops_per_image']:,.0f} | "
                     f"{q['chip_nj']:,.1f} | {q['dense_int8_nj']:,.1f} | {q['chip_nj'] / q['dense_int8_nj']:.0f}x |")
    return "\n".join(lines)


@run_cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_protocol_args(p, default_out="runs/energy-sweep")
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-steps", nargs="+", type=int, default=[4, 8, 16])
    p.add_argument("--relay-noise", nargs="+", type=float, default=[0.05, 0.0])
    p.add_argument("--lorsp-rank", type=int, default=8, help="LoRSP's rank (the benchmarks' val-chosen 8)")
    p.add_argument("--samples", type=int, default=256, help="test images of each chip simulation")
    p.add_argument("--json", default="runs/energy-sweep/energy_sweep.json")
    p.add_argument("--figure", default="runs/energy-sweep/energy_sweep.png")
    p.set_defaults(prompt_lr=0.1)  # LoRSP's rate, chosen on val (docs/protocol.md)
    args = p.parse_args(argv)
    points = [point(args.dataset, args.seed, t, n, args) for n in args.relay_noise for t in args.time_steps]
    result = run_record(args, points=points)
    write_json(Path(args.json), result)
    plot(points, Path(args.figure), title(result))
    for q in points:
        print(f"T={q['time_steps']:>2} noise={q['relay_noise']:<4g} test {100 * q['test_accuracy']:.1f}%  "
              f"chip {q['chip_nj']:.1f} nJ  dense int8 {q['dense_int8_nj']:.1f} nJ  synops {q['synops_per_image']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
