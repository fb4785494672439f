"""Deployment table: what each trained method costs on the chip and the accelerator, per image.

    python benchmarks/deployment.py --runs runs/baselines --dataset mnist-5k --seed 0 \
        --limit 256 --out runs/deployment

For the LoRSP run: ``lorsp-export --target all`` (NIR + netx for the chip, fp32/fp16/int8
ONNX for the backbone), then ``lorsp-cosim`` in float and bit-accurate fixed mode (fp32
backbone) and in fixed mode with the fp16 and int8 backbones, on the first ``--limit``
test images. The generator's spikes, synaptic ops and energy, the host stages and the
backbone come from those reports (hw_sim/stage_energy.py says what is counted and priced).

The other methods (linear probe, VP, LoR-VP) run the same backbone graph (so the same MACs,
read from the LoRSP bundle's manifest) and, for VP and LoR-VP, add a fixed prompt image
to every input on the accelerator: ``3 L^2`` adds at the backbone's precision (LoR-VP's
``B A`` is computed once, at load). Their latency is the cosim's backbone-only
onnxruntime latency plus the measured time of that addition. Their accuracy is PyTorch's
(the run's metrics.json), the LoRSP rows' the co-simulation's.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import method_label, parse_method  # noqa: E402
from benchmarks.bundles import bundle_is_current  # noqa: E402
from benchmarks.output import fail, run_record, write_tables  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")
COSIM_RUNS = (("float", "fp32"), ("fixed", "fp32"), ("fixed", "fp16"), ("fixed", "int8"))


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def bin_of(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def lorsp_reports(model: Path, out: Path, dataset: str, limit: int) -> dict[str, dict[str, Any]]:
    """Export the LoRSP run and co-simulate it; ``{"<mode>-<precision>": cosim.json}``."""
    bundle = out / "bundle"
    fresh = not bundle_is_current(bundle, model)  # a run trained again is exported and co-simulated again
    if fresh:
        run([bin_of("lorsp-export"), "--target", "all", str(model), "-o", str(bundle), "--precision", *PRECISIONS,
             "--samples", "64", "--quiet", "--force"])
    reports = {}
    for mode, precision in COSIM_RUNS:
        report = out / f"cosim-{mode}-{precision}"
        if fresh or not (report / "cosim.json").exists():
            run([bin_of("lorsp-cosim"), str(bundle), "--dataset", dataset, "--split", "test", "--limit", str(limit),
                 "--mode", mode, "--precision", precision, "-o", str(report), "--quiet", "--force"])
        reports[f"{mode}-{precision}"] = json.loads((report / "cosim.json").read_text())
    return reports


def prompt_add_ms(image_size: int, batch: int = 64, repeats: int = 20) -> float:
    """Milliseconds per image of adding a fixed fp32 prompt to a batch (numpy, this CPU)."""
    import numpy as np

    x = np.random.default_rng(0).random((batch, 3, image_size, image_size), dtype=np.float32)
    p = np.random.default_rng(1).random((3, image_size, image_size), dtype=np.float32)
    out = np.empty_like(x)
    np.add(x, p, out=out)
    start = time.perf_counter()
    for _ in range(repeats):
        np.add(x, p, out=out)
    return 1000 * (time.perf_counter() - start) / (repeats * batch)


def stage_nj(report: dict[str, Any], stage: str) -> float:
    return next(s["nj"] for s in report["energy"]["stages"] if s["stage"] == stage)


def lorsp_row(spec: str, reports: dict[str, dict[str, Any]], metrics: dict[str, Any]) -> dict[str, Any]:
    fixed = reports["fixed-fp32"]
    row = {"method": spec, "prompt_params": metrics["params"]["prompt"],
           "accuracy_pytorch": metrics["test_accuracy"],
           "accuracy": {k: r["accuracy"]["cosim"] for k, r in reports.items()},
           "agreement": {k: r["agreement"]["share"] for k, r in reports.items()},
           "spikes_per_image": {mode: sum(reports[f"{mode}-fp32"]["activity"]["spikes_per_image"])
                                for mode in ("float", "fixed")},
           "synops_per_image": {mode: sum(reports[f"{mode}-fp32"]["activity"]["synops_per_image"])
                                for mode in ("float", "fixed")},
           "generator_nj": {mode: stage_nj(reports[f"{mode}-fp32"], "generator") for mode in ("float", "fixed")},
           "generator_dense_nj": fixed["energy"]["generator_dense"]["total_nj"],
           "host_nj": stage_nj(fixed, "encode") + stage_nj(fixed, "prompt"),
           "backbone_macs": next(s["operations"]["mac"] for s in fixed["energy"]["stages"] if s["stage"] == "backbone"),
           "backbone_nj": {p: stage_nj(reports[f"fixed-{p}"], "backbone") for p in PRECISIONS},
           "total_nj": {p: reports[f"fixed-{p}"]["energy"]["total_pj"] / 1e3 for p in PRECISIONS},
           "latency_ms_per_image": {p: reports[f"fixed-{p}"]["latency"]["pipeline_ms_per_image"] for p in PRECISIONS},
           "samples": fixed["samples"]}
    return row


def dense_row(method: str, metrics: dict[str, Any], lorsp: dict[str, Any], reports: dict[str, dict[str, Any]],
              image_size: int, add_ms: float) -> dict[str, Any]:
    """A method whose prompt is a fixed image (or none), priced and timed on the accelerator."""
    from hw_sim.energy import HOROWITZ_PJ

    adds = 0 if parse_method(method)[0] == "none" else 3 * image_size ** 2
    prompt_nj = {p: adds * HOROWITZ_PJ[p]["add"] / 1e3 for p in PRECISIONS}
    backbone_ms = {p: 1000 / reports[f"fixed-{p}"]["latency"]["backbone_only_images_per_s"] for p in PRECISIONS}
    return {"method": method, "prompt_params": metrics["params"]["prompt"],
            "accuracy_pytorch": metrics["test_accuracy"], "prompt_adds_per_image": adds,
            "prompt_nj": prompt_nj, "backbone_macs": lorsp["backbone_macs"], "backbone_nj": lorsp["backbone_nj"],
            "total_nj": {p: lorsp["backbone_nj"][p] + prompt_nj[p] for p in PRECISIONS},
            "latency_ms_per_image": {p: backbone_ms[p] + (add_ms if adds else 0.0) for p in PRECISIONS}}


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    rows = result["rows"]
    lo = next(r for r in rows if parse_method(r["method"])[0] == "lorsp")
    lines = [f"{s['dataset']}, seed {s['seed']} runs of `{s['runs']}`, first {lo['samples']} test images, "
             f"{result['image_size']} px. Energy per image in nJ (arithmetic only: Loihi tables for the chip, "
             "Horowitz 2014 45 nm for host and accelerator; hw_sim/stage_energy.py), latency per image on this CPU "
             "(onnxruntime, batch 64; LoRSP: the whole co-simulated pipeline).", "",
             "**The spiking generator on the Loihi model (LoRSP)**", "",
             "| mode | spikes / image | synaptic ops / image | generator energy (nJ) | agreement with PyTorch |",
             "|---|---|---|---|---|"]
    for mode in ("float", "fixed"):
        lines.append(f"| {mode} | {lo['spikes_per_image'][mode]:.1f} | {lo['synops_per_image'][mode]:.0f} | "
                     f"{lo['generator_nj'][mode]:.1f} | {100 * lo['agreement'][f'{mode}-fp32']:.1f}% |")
    lines += ["", f"The same generator as a dense fp32 network on the accelerator: {lo['generator_dense_nj']:.1f} nJ. "
              "LoRSP's host stages (encoding; adding the prompt at the open rows x columns only): "
              f"{lo['host_nj']:.1f} nJ.", "",
              "**End to end, per method** (backbone: "
              f"{lo['backbone_macs'] / 1e6:.1f} M MACs; fp32 / fp16 / int8 backbone)", "",
              "| method | prompt params | test accuracy (%, PyTorch) | prompt energy (nJ, fp32) | total energy (uJ) fp32 / fp16 / int8 "
              "| vs LoR-VP (int8) | latency (ms) fp32 / int8 |", "|---|---|---|---|---|---|---|"]
    ref = next((r for r in rows if parse_method(r["method"])[0] == "lorvp"), None)
    for r in rows:
        prompt_fp32 = (r["total_nj"]["fp32"] - r["backbone_nj"]["fp32"])
        vs = f"{r['total_nj']['int8'] / ref['total_nj']['int8']:.3f}x" if ref else "-"
        acc = r["accuracy_pytorch"]
        lines.append(f"| {method_label(r['method'])} | {r['prompt_params']:,} | {100 * acc:.1f} | {prompt_fp32:.1f} | "
                     + " / ".join(f"{r['total_nj'][p] / 1e3:.2f}" for p in PRECISIONS) + f" | {vs} | "
                     + f"{r['latency_ms_per_image']['fp32']:.2f} / {r['latency_ms_per_image']['int8']:.2f} |")
    lines += ["", "LoRSP co-simulation (mode-backbone precision): agreement with PyTorch "
              + ", ".join(f"{k} {100 * v:.1f}%" for k, v in lo["agreement"].items()) + "; split-pipeline accuracy "
              + ", ".join(f"{k} {100 * v:.1f}%" for k, v in lo["accuracy"].items()) + f" on {lo['samples']} images."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/baselines")
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="+", default=["none", "vp", "lorvp", "lorsp"])
    p.add_argument("--limit", type=int, default=256)
    p.add_argument("--out", default="runs/deployment")
    args = p.parse_args()
    run_dir = lambda spec: Path(args.runs) / args.dataset / parse_method(spec)[2] / f"seed{args.seed}"  # noqa: E731
    lorsp_spec = next((m for m in args.methods if parse_method(m)[0] == "lorsp"), None)
    if lorsp_spec is None:
        fail("--methods needs a LoRSP spec (lorsp or lorsp:OPTIONS)")
    missing = [str(run_dir(m) / "model.pt") for m in args.methods if not (run_dir(m) / "model.pt").exists()]
    if missing:
        fail(f"{missing[0]} is missing: train it with benchmarks/baselines.py first")
    out = Path(args.out) / args.dataset
    reports = lorsp_reports(run_dir(lorsp_spec) / "model.pt", out / parse_method(lorsp_spec)[2], args.dataset,
                            args.limit)
    metrics = {m: json.loads((run_dir(m) / "metrics.json").read_text()) for m in args.methods}
    lo = {**lorsp_row(lorsp_spec, reports, metrics[lorsp_spec]), "gate": metrics[lorsp_spec].get("gate")}
    image_size = int(metrics[lorsp_spec]["image_size"])
    add_ms = prompt_add_ms(image_size)
    rows = [lo if m == lorsp_spec else dense_row(m, metrics[m], lo, reports, image_size, add_ms) for m in args.methods]
    result = run_record(args, image_size=image_size, prompt_add_ms_per_image=add_ms, rows=rows)
    write_tables(args.out, "deployment", result, markdown(result))


if __name__ == "__main__":
    main()
