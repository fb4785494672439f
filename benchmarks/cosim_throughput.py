"""Co-simulation throughput: the whole deployment split against the backbone alone, in one run.

    python benchmarks/cosim_throughput.py [BUNDLE] [--backend fast] [--mode fixed] [--precision fp32]
                                          [--limit 1024] [--batch-size 64] [--rounds 7] [--json FILE]

BUNDLE is a ``lorsp-export --target all`` directory; without one, a band-gated LoRSP checkpoint (a chain
bundle; ``lorsp.prompts.lorsp.band_flags``) is trained briefly (sklearn-digits, 32 px, one epoch) and exported with ``--target all`` into a
temporary directory. The first ``--limit`` images of the test split (tiled when the split
is smaller) are run in batches of ``--batch-size``:

* the split pipeline (:class:`hw_sim.cosim.SplitPipeline`): host encoding, the generator on
  ``--backend``, the prompt on the host, the ONNX backbone in onnxruntime;
* the backbone alone: the same onnxruntime session on the same (unprompted) images.

Each of ``--rounds`` rounds runs both in turn, so that load from other processes falls on
both alike; images/s come from the fastest round of each (the least disturbed), with the
median beside it. PyTorch runs on one thread and onnxruntime on two, as in ``lorsp-cosim``.
The target: the pipeline at >= 0.8x the backbone's images/s with the fast backend.
Agreement: the pipeline's predictions against the PyTorch model's, on the same images.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lorsp.plumbing.fileio import write_json  # noqa: E402
from lorsp.prompts.lorsp import band_flags  # noqa: E402

TRAIN = ["--prompt", "lorsp", *band_flags(), "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1",
         "--limit-train", "128", "--limit-test", "64", "--batch-size", "32", "--quiet"]
TARGET_RATIO = 0.8


def make_bundle(workdir: Path) -> Path:
    """Train a LoRSP checkpoint briefly and export it with ``--target all`` (no simulation) into ``workdir``."""
    run, bundle = workdir / "run", workdir / "bundle"
    subprocess.run([sys.executable, "-m", "lorsp.train", *TRAIN, "--out", str(run)], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "-m", "pipeline.export_cli", "--target", "all", str(run / "model.pt"), "-o", str(bundle),
                    "--precision", "fp16", "int8", "--no-simulate", "--quiet"], cwd=ROOT, check=True)
    return bundle


def images(bundle, limit: int):
    """The first ``limit`` test images of the bundle's dataset, tiled when the split holds fewer."""
    import torch

    from lorsp.data import load_split_images

    config = bundle.config
    x, _ = load_split_images(config["dataset"], config["image_size"], limit, config.get("data_root"))
    return torch.cat([x] * -(-limit // len(x)))[:limit]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(bundle, args: argparse.Namespace) -> dict:
    import numpy as np

    from deploy.onnx_runtime import run_logits
    from hw_sim.cosim import host_threads, open_pipeline
    from hw_sim.run import reference

    pipeline = open_pipeline(bundle, precision=args.precision, backend=args.backend, mode=args.mode,
                             timeout=args.timeout)
    x = images(bundle, args.limit)
    batches = x.split(args.batch_size)
    seconds: dict[str, list[float]] = {"pipeline": [], "backbone_only": []}
    with host_threads():
        runs = [pipeline(b) for b in batches]  # warm-up, and the predictions that are compared
        for _ in range(args.rounds):
            seconds["pipeline"].append(timed(lambda: [pipeline(b) for b in batches]))
            seconds["backbone_only"].append(timed(lambda: [run_logits(pipeline.session, b, len(b))
                                                           for b in batches]))
        predicted = np.concatenate([r.logits for r in runs]).argmax(1)
        expected = np.concatenate([reference(pipeline.model, b).logits.numpy() for b in batches]).argmax(1)
    n = len(x)
    rates = {name: {"images_per_s_best": n / min(s), "images_per_s_median": n / statistics.median(s),
                    "seconds": s} for name, s in seconds.items()}
    ratio = rates["pipeline"]["images_per_s_best"] / rates["backbone_only"]["images_per_s_best"]
    return {"samples": n, "batch_size": args.batch_size, "rounds": args.rounds, "backend": pipeline.backend,
            "mode": args.mode, "precision": args.precision, **rates,
            "ratio_best": ratio,
            "ratio_median": rates["pipeline"]["images_per_s_median"] / rates["backbone_only"]["images_per_s_median"],
            "target": f"pipeline >= {TARGET_RATIO}x backbone-only images/s (fast backend)",
            "target_met": ratio >= TARGET_RATIO,
            "agreement": {"equal": int((predicted == expected).sum()), "samples": n,
                          "share": float((predicted == expected).mean())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", nargs="?", default=None, help="a lorsp-export --target all directory")
    p.add_argument("--backend", default=None, help="simulator backend (default: fast where registered)")
    p.add_argument("--mode", default="fixed", choices=("float", "fixed"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    p.add_argument("--limit", type=int, default=1024, help="images per round (the test split tiled)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    from deploy.bundle import open_bundle
    from lorsp.plumbing.provenance import git_commit, machine, versions

    with tempfile.TemporaryDirectory(prefix="cosim-bench-") as tmp:
        bundle = open_bundle(args.bundle or make_bundle(Path(tmp)))
        result = {"bundle": args.bundle or "trained for this run (sklearn-digits, 32 px, 1 epoch)",
                  "dataset": bundle.config["dataset"], "image_size": bundle.config["image_size"],
                  "machine": machine(), "git_commit": git_commit(), "load_average": os.getloadavg(),
                  "versions": {k: v for k, v in versions().items() if k in ("python", "torch", "onnxruntime", "numpy")},
                  "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), **measure(bundle, args)}
    print(f"{result['samples']} images, batch {result['batch_size']}, {result['backend']} {result['mode']}, "
          f"{result['precision']}, best of {result['rounds']} rounds (median in brackets); load average "
          f"{' '.join(f'{x:.2f}' for x in result['load_average'])}")
    for name in ("pipeline", "backbone_only"):
        rate = result[name]
        print(f"  {name:14} {rate['images_per_s_best']:9.0f} images/s ({rate['images_per_s_median']:.0f})")
    print(f"  ratio {result['ratio_best']:.3f} ({result['ratio_median']:.3f}); target >= {TARGET_RATIO}: "
          f"{'met' if result['target_met'] else 'NOT met'}")
    a = result["agreement"]
    print(f"  agreement {100 * a['share']:.2f}% ({a['equal']}/{a['samples']}) of predictions with PyTorch")
    if args.json:
        write_json(args.json, result)
        print(f"-> {args.json}")


if __name__ == "__main__":
    main()
