"""ONNX Runtime vs PyTorch eager: backbone + head latency, parity and int8 accuracy, in one run.

    python benchmarks/onnx_latency.py [--checkpoint MODEL.pt] [--image-size 128] [--json FILE]

The graph is :func:`export.onnx_graph.export_backbone_onnx`'s (prompted image -> logits):
EfficientNet-Lite0 and a linear (lp) head, trained here on mnist-5k features for a few
seconds (prompt ``none``) unless ``--checkpoint`` gives a trained model. Both engines
get the same threads (``--threads``, default 2: ``torch.set_num_threads`` and
onnxruntime's ``intra_op_num_threads``) after :func:`lorsp.plumbing.runtime.tune_allocator`.
Each of ``--rounds`` rounds runs torch, ort fp32 and ort int8 in turn, so that load
from other processes falls on all of them alike; the ratios come from this one run.
Both the fastest round (``min``: the least disturbed, what the targets are judged on)
and the median are reported, with the load average: on a shared CPU, PyTorch's OpenMP
regions stall whenever one of their threads is descheduled, and eager latencies
scatter by an order of magnitude. Each engine keeps its own default for idle worker
threads: PyTorch's OpenMP pool and ONNX Runtime's pool both spin briefly before they
sleep (``session.intra_op.allow_spinning=1``, the setting of a deployed session);
``--no-spinning`` makes ORT's workers sleep at once, the conservative figure for a CPU
shared with other work (reported in docs/onnx.md). int8 is
calibrated on ``--calibration`` prompted training images; its accuracy drop is
measured against fp32 on the validation split.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.output import fail  # noqa: E402

TARGETS = {  # name: (measured key, upper bound)
    "ort fp32 <= 0.25x torch, batch 1": ("fp32_vs_torch_b1", 0.25),
    "ort fp32 <= 0.5x torch, batch 32": ("fp32_vs_torch_b32", 0.5),
    "ort int8 <= 0.5x fp32, batch 1": ("int8_vs_fp32_b1", 0.5),
    "ort int8 <= 0.5x fp32, batch 32": ("int8_vs_fp32_b32", 0.5),
    "int8 accuracy drop <= 1 point": ("int8_accuracy_drop_points", 1.0),
}


def fit_head(model: Any, dataset: Any, count: int, steps: int = 60) -> None:
    """Train ``model.head`` (lp) on the features of ``count`` prompted images, full batch, L-BFGS."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        x = torch.stack([dataset[i][0] for i in range(count)])
        feats = torch.cat([model.backbone.features(model.prompted(b)) for b in x.split(64)])
    y = torch.tensor(dataset.targets[:count])
    head = model.head.train()
    opt = torch.optim.LBFGS(head.parameters(), lr=0.5, max_iter=steps, history_size=20)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(head(feats), y) + 1e-4 * head.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    head.eval()


def load_model(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The model (the checkpoint's, or Lite0 + an lp head fitted here), its data splits, and its origin."""
    import torch

    import lorsp
    from lorsp.data import create_splits
    from lorsp.model import build_model
    from lorsp.train import TrainConfig

    if args.checkpoint:
        model = lorsp.load(args.checkpoint)
        config = model.config
        splits = create_splits(args.dataset or config["dataset"], config["image_size"], root=config.get("data_root"),
                               limit_val=args.val_images)
        return model, splits, f"checkpoint {args.checkpoint}"
    dataset = args.dataset or "mnist-5k"
    splits = create_splits(dataset, args.image_size, limit_val=args.val_images)
    torch.manual_seed(0)
    cfg = TrainConfig(dataset=dataset, prompt="none", head="lp", image_size=args.image_size)
    model = build_model(cfg.to_dict(), splits.classes).eval()
    start = time.perf_counter()
    fit_head(model, splits.train, args.train_images)
    return model, splits, (f"efficientnet_lite0 + lp head fitted on {args.train_images} {dataset} training "
                           f"images in {time.perf_counter() - start:.0f} s (prompt none)")


def seconds_per_call(fn: Callable[[], Any], min_time: float) -> float:
    """Mean seconds of ``fn()`` over as many calls as fill ``min_time`` (at least one)."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def interleaved_latency(engines: dict[str, Callable[[], Any]], rounds: int,
                        min_time: float) -> dict[str, dict[str, float]]:
    """``{statistic: {engine: ms per call}}`` over rounds in which the engines take turns.

    Statistics: ``min`` (the least disturbed round: what the targets are judged on, as
    other jobs share the CPU) and ``median``.
    """
    for fn in engines.values():  # warm-up: first-call allocations, kernel selection
        fn()
        fn()
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, fn in engines.items():
            samples[name].append(seconds_per_call(fn, min_time))
    return {stat: {name: 1000 * fn(s) for name, s in samples.items()}
            for stat, fn in (("min", min), ("median", statistics.median))}


def on_threads(threads: int, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with torch on ``threads`` threads, the previous count restored after."""
    import torch

    def call() -> Any:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)

    return call


def measure_latency(model: Any, sessions: dict[str, Any], images: Any, batches: list[int], rounds: int,
                    min_time: float) -> dict[str, dict[str, dict[str, float]]]:
    """``{statistic: {batch: {engine: ms}}}`` for each batch size (the first ``batch`` images).

    Engines: ``torch`` (eager, the benchmark's threads), ``torch_1thread`` (eager on one
    thread: a reference, as OpenMP on a shared, oversubscribed CPU can be slower on two
    threads than on one) and the onnxruntime ``sessions``.
    """
    import torch

    from deploy.onnx_runtime import INPUT_NAME, OUTPUT_NAME

    out: dict[str, dict[str, dict[str, float]]] = {"min": {}, "median": {}}
    for batch in batches:
        x = images[:batch].contiguous()
        feed = {INPUT_NAME: x.numpy()}
        engines: dict[str, Callable[[], Any]] = {"torch": lambda: model.classify(x),
                                                 "torch_1thread": on_threads(1, lambda: model.classify(x))}
        engines.update({name: (lambda s=s: s.run([OUTPUT_NAME], feed)) for name, s in sessions.items()})
        with torch.inference_mode():
            for stat, ms in interleaved_latency(engines, rounds, min_time).items():
                out[stat][str(batch)] = ms
    return out


def ratios(latency: dict[str, dict[str, float]]) -> dict[str, float]:
    """Latency ratios per batch from ``{batch: {engine: ms}}``."""
    out = {}
    for batch, ms in latency.items():
        out[f"fp32_vs_torch_b{batch}"] = ms["ort_fp32"] / ms["torch"]
        out[f"fp32_vs_torch_1thread_b{batch}"] = ms["ort_fp32"] / ms["torch_1thread"]
        if "ort_int8" in ms:
            out[f"int8_vs_fp32_b{batch}"] = ms["ort_int8"] / ms["ort_fp32"]
            out[f"int8_vs_torch_b{batch}"] = ms["ort_int8"] / ms["torch"]
    return out


def target_table(measured: dict[str, float]) -> dict[str, dict[str, Any]]:
    return {name: {"measured": measured.get(key), "bound": bound,
                   "met": None if measured.get(key) is None else measured[key] <= bound}
            for name, (key, bound) in TARGETS.items()}


def print_report(result: dict[str, Any]) -> None:
    s = result["settings"]
    load = result["load_average_1min"]
    print(f"backbone + head, {result['image_size']} px, {s['threads']} threads each; {result['machine']}; "
          f"load average {load['before']:.1f} -> {load['after']:.1f} on {load['cpus']} CPUs")
    print(f"model: {result['model']}")
    engines = list(next(iter(result["latency_ms"]["min"].values())))
    print(f"{'stat':>6s} {'batch':>5s} " + " ".join(f"{e + ' ms':>17s}" for e in engines)
          + f" {'fp32/torch':>11s} {'fp32/t1thr':>11s} {'int8/fp32':>10s}")
    for stat, by_batch in result["latency_ms"].items():
        r = result["ratios"][stat]
        for batch, ms in by_batch.items():
            print(f"{stat:>6s} {batch:>5s} " + " ".join(f"{ms[e]:17.2f}" for e in engines)
                  + f" {r[f'fp32_vs_torch_b{batch}']:10.3f}x {r[f'fp32_vs_torch_1thread_b{batch}']:10.3f}x"
                  + f" {r.get(f'int8_vs_fp32_b{batch}', float('nan')):9.3f}x")
    for precision, p in result["parity"].items():
        print(f"parity {precision}: max |logit diff| {p['max_abs_logit_diff']:.2e} on {p['samples']} val images, "
              f"predictions equal {100 * p['prediction_agreement']:.1f}%")
    for precision, a in result["accuracy"].items():
        print(f"accuracy {precision}: {100 * a['accuracy']:.2f}% on {a['samples']} val images "
              f"(drop vs fp32 {100 * a['drop_vs_fp32']:+.2f} points)")
    for name, t in result["targets"].items():
        verdict = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
        name = f"{name} (min latency)" if "accuracy" not in name else name
        print(f"target {name}: {t['measured']:.3f} -> {verdict}" if t["measured"] is not None
              else f"target {name}: {verdict}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from deploy.onnx_runtime import make_session
    from export.onnx_checks import FP32_TOLERANCE, precision_accuracy, prompted_arrays, verify_onnx
    from export.onnx_convert import write_int8
    from export.onnx_graph import export_backbone_onnx
    from lorsp.plumbing.provenance import git_commit, machine, versions

    torch.set_num_threads(args.threads)
    model, splits, origin = load_model(args)
    with tempfile.TemporaryDirectory(prefix="lorsp-onnx-bench-") as work:
        fp32 = export_backbone_onnx(model, Path(work) / "backbone.onnx")
        paths = {"fp32": fp32}
        if not args.no_int8:
            calibration, _ = prompted_arrays(splits.train, model.prompted, limit=args.calibration)
            paths["int8"] = write_int8(fp32, Path(work) / "backbone.int8.onnx", calibration)
        check = torch.stack([splits.val[i][0] for i in range(min(args.parity_images, len(splits.val)))])
        parity = {p: verify_onnx(f, model, check, tolerance=FP32_TOLERANCE if p == "fp32" else None)
                  for p, f in paths.items()}
        accuracy = precision_accuracy(paths, splits.val, prompt=model.prompted)
        sessions = {f"ort_{p}": make_session(f, ["cpu"], threads=args.threads, spinning=not args.no_spinning)
                    for p, f in paths.items()}
        images, _ = prompted_arrays(splits.val, model.prompted, limit=max(args.batches))
        if len(images) < max(args.batches):
            fail(f"batch {max(args.batches)} needs as many validation images, there are {len(images)}")
        load_before = os.getloadavg()[0]
        latency = measure_latency(model, sessions, torch.from_numpy(images), args.batches, args.rounds,
                                  args.min_time)
        load = {"before": load_before, "after": os.getloadavg()[0], "cpus": os.cpu_count()}
    by_stat = {stat: ratios(ms) for stat, ms in latency.items()}
    measured = dict(by_stat["min"])
    if "int8" in accuracy:
        measured["int8_accuracy_drop_points"] = 100 * accuracy["int8"]["drop_vs_fp32"]
    return {"settings": vars(args), "model": origin, "image_size": int(model.config["image_size"]),
            "machine": machine(), "versions": versions(), "git_commit": git_commit(),
            "load_average_1min": load, "latency_ms": latency, "ratios": by_stat, "parity": parity,
            "accuracy": accuracy, "targets": target_table(measured)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="a trained model.pt (default: fit an lp head here)")
    p.add_argument("--dataset", default=None, help="default: the checkpoint's, else mnist-5k")
    p.add_argument("--image-size", type=int, default=128, help="without --checkpoint")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per engine per round")
    p.add_argument("--train-images", type=int, default=1000, help="images the lp head is fitted on")
    p.add_argument("--calibration", type=int, default=128, help="prompted training images for int8")
    p.add_argument("--val-images", type=int, default=None, help="limit the validation split")
    p.add_argument("--parity-images", type=int, default=32)
    p.add_argument("--no-int8", action="store_true")
    p.add_argument("--no-spinning", action="store_true",
                   help="ORT workers sleep as soon as a run ends (default: they spin briefly, ORT's default)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from lorsp.plumbing.runtime import tune_allocator

    tune_allocator()
    result = run(args)
    print_report(result)
    if args.json:
        from lorsp.plumbing.fileio import write_json

        write_json(args.json, result)


if __name__ == "__main__":
    main()
