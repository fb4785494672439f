"""What ``--precision`` does to visual prompting: the input-image gradient, the protocol's accuracy, the speed.

    python benchmarks/precision.py --dataset mnist-5k --methods lorsp:prompt-lr=0.2,rank=8 lorvp:prompt-lr=0.2 \
        --precisions fp32 bf16 fp16 --seeds 0 1 2 --out runs/precision --json docs/data/precision.json

1. **Accuracy and speed**: every method, precision and seed is one ``lorsp-train --precision P`` run
   under ``benchmarks/baselines.py``'s protocol (options below; runs go to
   ``OUT/<dataset>/<tag>_precision-P/seed<k>`` and are reused when complete). Reported: test accuracy
   of the val-selected model, mean +- std over seeds, and training images/s (the runs' own figure).
2. **The gradient prompts learn from**: on the seed-0 fp32 model of each method (trained in step 1)
   and the first ``--grad-images`` test images, the gradient of the cross-entropy with respect to the
   input image (and, below it, to the prompt's trainable parameters) under each precision, against fp32: the relative error ``||g_P - g_fp32|| / ||g_fp32||``
   over the batch, its median and largest value per image, the cosine of the two, and the share of
   entries that are zero under P but not under fp32 (underflow). fp16 is measured as training runs
   it (the loss multiplied by the gradient scaler's starting scale, 2^16, then divided back) and
   without the scaler. An fp64 row (the model and the images in float64) gives the floor: how far fp32
   itself is from exact; LoRSP's spike encoding computes in fp32 by design, so it has no fp64 row.

3. **Speed** (``--speed``): training steps per second of each method and precision on one batch of
   ``--speed-batch`` real images at ``--speed-image-size`` px (lorsp-train's own step:
   :func:`lorsp.train.step_loss` and :func:`lorsp.train.apply_step`), after 3 warm-up steps, the
   median of 5 rounds of ``--speed-steps`` steps, as images/s.

``--device`` is lorsp-train's (the gradient and the speed are measured there too). JSON with ``--json FILE``.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import add_protocol_args, map_runs, method_label, parse_method, plan_run, train_run  # noqa: E402
from benchmarks.engine import engine_options  # noqa: E402
from benchmarks.output import run_record, write_tables  # noqa: E402
from lorsp.plumbing.cli import run_cli  # noqa: E402
from lorsp.plumbing.cli_options import seed as seed_number  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402
from lorsp.plumbing.fileio import write_json  # noqa: E402
from lorsp.plumbing.precision import PRECISIONS  # noqa: E402

FP16_START_SCALE = 2.0 ** 16
"""torch.amp.GradScaler's default ``init_scale``: what multiplies an fp16 run's first losses."""
GRADIENT_ROWS = ("fp64", "bf16", "fp16", "fp16-unscaled")
"""The precisions the input-image gradient is compared under, each against fp32."""


def input_gradient(model: Any, x: Any, y: Any, row: str) -> tuple[Any, Any]:
    """The gradients of the cross-entropy of ``model`` on ``(x, y)``, computed as ``row`` says, as fp32 tensors:
    with respect to the input images (``(N, C, L, L)``) and to the prompt's trainable parameters (one flat row
    ``(1, P)``: what the optimizer steps with, the image gradient summed through the prompt)."""
    import torch
    import torch.nn.functional as F

    from lorsp.plumbing.precision import Precision

    if row == "fp64":
        model, x = copy.deepcopy(model).double(), x.double()
    name = "fp16" if row.startswith("fp16") else ("fp32" if row == "fp64" else row)
    scale = FP16_START_SCALE if row == "fp16" else 1.0
    image = x.clone().requires_grad_(True)
    params = [p for p in model.prompt.parameters() if p.requires_grad]
    with Precision(name, x.device.type).autocast():
        loss = F.cross_entropy(model(image).float(), y)
    grad, *param_grads = torch.autograd.grad(loss * scale, [image, *params], allow_unused=True)
    flat = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(param_grads, params)])
    if row == "fp64":  # the exact side is the reference here: fp32's error against it
        return grad, flat[None]
    return (grad / scale).float(), (flat / scale).float()[None]


def gradient_error(reference: Any, grad: Any) -> dict[str, float]:
    """How far ``grad`` is from ``reference`` (both ``(N, C, L, L)``): relative L2 error over the batch and per
    image (median, max), cosine, and the share of entries zero in ``grad`` but not in ``reference``."""
    import torch

    diff = (grad - reference).flatten(1).norm(dim=1)
    per_image = (diff / reference.flatten(1).norm(dim=1).clamp_min(1e-30)).tolist()
    return {"relative_error": float((grad - reference).norm() / reference.norm()),
            "per_image_median": statistics.median(per_image), "per_image_max": max(per_image),
            "cosine": float(torch.nn.functional.cosine_similarity(grad.flatten(), reference.flatten(), dim=0)),
            "underflow_share": float(((grad == 0) & (reference != 0)).float().mean())}


def measure_gradients(model_path: Path, dataset: str, image_size: int, images: int, device: str) -> dict[str, Any]:
    """:func:`gradient_error` of every :data:`GRADIENT_ROWS` row against fp32, for one trained model."""
    import torch

    import lorsp
    from lorsp.data import load_split_images
    from lorsp.plumbing.device import resolve_device
    from lorsp.plumbing.precision import precision_for

    where = resolve_device(device)
    precision_for("fp32", where)  # the reference in IEEE fp32 on CUDA too (TensorFloat-32 off)
    model = lorsp.load(model_path).to(where).eval()
    x, y = load_split_images(dataset, image_size, images)
    x, y = x.to(where), y.to(where)
    torch.manual_seed(0)
    reference, reference_params = input_gradient(model, x, y, "fp32")
    rows, param_rows = {}, {}
    for row in GRADIENT_ROWS:
        try:
            grad, param_grad = input_gradient(model, x, y, row)
        except RuntimeError as exc:  # fp64 only: a prompt that computes in fp32 inside (LoRSP's encoding)
            if row != "fp64":
                raise
            rows[row] = param_rows[row] = {"unavailable": str(exc).splitlines()[0][:120]}
            continue
        if row == "fp64":  # fp32 against the exact gradient
            rows[row] = gradient_error(grad, reference.double())
            param_rows[row] = gradient_error(param_grad, reference_params.double())
        else:
            rows[row], param_rows[row] = gradient_error(reference, grad), gradient_error(reference_params, param_grad)
    return {"model": str(model_path), "images": len(x), "reference_norm": float(reference.norm()),
            "prompt_parameters": int(reference_params.numel()), "rows": rows, "prompt_parameter_rows": param_rows}


def measure_speed(spec: str, precision: str, args: argparse.Namespace, rounds: int = 5) -> dict[str, Any]:
    """Training images/s of ``spec`` under ``precision`` on ``args.device`` (see the module's point 3)."""
    import time

    import torch

    from benchmarks.baselines import check_train_argv
    from lorsp.data import load_source, load_split_images
    from lorsp.plumbing.device import describe_device, resolve_device
    from lorsp.model import build_model
    from lorsp.plumbing.precision import precision_for
    from lorsp.train import apply_step, step_loss

    name, extra, _ = parse_method(spec)
    cfg = check_train_argv(["--dataset", args.dataset, "--backbone", args.backbone, "--prompt", name, *extra,
                            "--image-size", str(args.speed_image_size), "--precision", precision, "--out", "-"])
    where = resolve_device(args.device)
    torch.manual_seed(0)
    x, y = load_split_images(args.dataset, args.speed_image_size, args.speed_batch, split="train")
    model = build_model(cfg.to_dict(), list(load_source(args.dataset).classes)).to(where)
    x, y = x.to(where), y.to(where)
    if model.prompt.calibrates:
        model.prompt.calibrate(x)
    model.train()
    arithmetic = precision_for(precision, where)
    opt = torch.optim.SGD(model.trainable_parameters(), lr=1e-3, momentum=0.9)
    scaler = arithmetic.scaler()

    def steps(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            apply_step(step_loss(model, model.prompt, x, y, float("inf"), arithmetic)[0], opt, scaler)  # past any warm-up
        if where.type == "cuda":
            torch.cuda.synchronize(where)
        return time.perf_counter() - start

    steps(3)
    rates = [args.speed_steps * len(x) / steps(args.speed_steps) for _ in range(rounds)]
    return {"images_per_s": statistics.median(rates), "rounds": rates, "device": describe_device(where),
            "batch": len(x), "image_size": args.speed_image_size}


def seeds_of(precision: str, args: argparse.Namespace) -> list[int]:
    """The seeds ``precision`` is run with: ``--fp16-seeds`` for fp16 where given, else ``--seeds``."""
    return args.fp16_seeds if precision == "fp16" and args.fp16_seeds else args.seeds


def summarise_runs(runs: list[dict]) -> dict[str, Any]:
    acc = [r["test_accuracy"] for r in runs]
    return {"test_accuracy_mean": statistics.mean(acc), "test_accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "test_accuracy": acc, "seeds": [r["seed"] for r in runs],
            "train_images_per_s": statistics.mean(r["train_images_per_s"] for r in runs),
            "device": runs[0].get("device", "cpu"), "command": runs[0]["command"]}


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [f"{s['dataset']}, {s['backbone']}, {s['image_size']} px, {s['epochs']} epochs, batch {s['batch_size']}, "
             f"{s['limit_train']} training and {s['limit_test']} test images, seeds {s['seeds']}"
             + (f" (fp16: {s['fp16_seeds']})" if s.get("fp16_seeds") else "") + "; "
             f"{result['machine']}.", "",
             "| method | precision | test accuracy (%) | per seed | training images/s |", "|---|---|---|---|---|"]
    for spec, by_precision in result["accuracy"].items():
        for name, r in by_precision.items():
            lines.append(f"| {method_label(spec)} | {name} | {100 * r['test_accuracy_mean']:.1f} +- "
                         f"{100 * r['test_accuracy_std']:.1f} | "
                         f"{', '.join(f'{100 * a:.1f}' for a in r['test_accuracy'])} | {r['train_images_per_s']:.0f} |")
    lines += ["", f"Input-image gradient against fp32 (seed-0 fp32 model, first {s['grad_images']} test images; "
              "the fp64 row: fp32 against float64):", "",
              "| method | computed in | relative error | per image: median | per image: max | cosine | "
              "zero where fp32 is not |", "|---|---|---|---|---|---|---|"]
    for spec, g in result["gradient"].items():
        for row, e in g["rows"].items():
            if "unavailable" in e:
                lines.append(f"| {method_label(spec)} | {row} | n/a: the prompt computes in fp32 | | | | |")
                continue
            lines.append(f"| {method_label(spec)} | {row} | {e['relative_error']:.2e} | {e['per_image_median']:.2e} | "
                         f"{e['per_image_max']:.2e} | {e['cosine']:.6f} | {100 * e['underflow_share']:.2f}% |")
    lines += ["", "Gradient of the prompt's trainable parameters (what SGD steps with) against fp32, same batch:", "",
              "| method | parameters | computed in | relative error | cosine | zero where fp32 is not |",
              "|---|---|---|---|---|---|"]
    for spec, g in result["gradient"].items():
        for row, e in g["prompt_parameter_rows"].items():
            if "unavailable" in e:
                continue
            lines.append(f"| {method_label(spec)} | {g['prompt_parameters']:,} | {row} | {e['relative_error']:.2e} | "
                         f"{e['cosine']:.6f} | {100 * e['underflow_share']:.2f}% |")
    if result.get("speed"):
        first = next(iter(next(iter(result["speed"].values())).values()))
        lines += ["", f"Training speed, images/s (batch {first['batch']}, {first['image_size']} px, median of 5 rounds; "
                  f"{first['device']}):", "", "| method | " + " | ".join(precisions_of(result)) + " |",
                  "|---|" + "---|" * len(precisions_of(result))]
        for spec, by_precision in result["speed"].items():
            lines.append(f"| {method_label(spec)} | " + " | ".join(f"{by_precision[q]['images_per_s']:.0f}"
                                                               for q in precisions_of(result)) + " |")
    return "\n".join(lines) + "\n"


def precisions_of(result: dict[str, Any]) -> list[str]:
    """The precisions of a result, in the order they were run."""
    return list(next(iter(result["accuracy"].values())))


@run_cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--methods", nargs="+", default=["lorsp:prompt-lr=0.2,rank=8", "lorvp:prompt-lr=0.2"])
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--fp16-seeds", nargs="+", type=seed_number(), default=None,
                   help="seeds of the fp16 runs (default: --seeds); a CPU runs fp16 some 20x slower than fp32")
    p.add_argument("--grad-images", type=int, default=64, help="test images the gradient is measured on")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--speed", action="store_true", help="also time training steps per method and precision")
    p.add_argument("--speed-image-size", type=int, default=224)
    p.add_argument("--speed-batch", type=int, default=128)
    p.add_argument("--speed-steps", type=int, default=10, help="timed steps per round (5 rounds, median)")
    add_protocol_args(p, default_out="runs/precision")
    p.set_defaults(image_size=64, epochs=3, limit_train=500, limit_test=500)
    args = p.parse_args(argv)
    for option in ("grad_images", "speed_image_size", "speed_batch", "speed_steps"):
        if getattr(args, option) < 1:
            raise LorspError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    precisions = ["fp32", *(q for q in args.precisions if q != "fp32")]  # fp32: the reference, always run
    planned = []
    for spec in args.methods:
        name, extra, tag = parse_method(spec)
        for q in precisions:
            planned += [(spec, q, plan_run(args.dataset, name, seed, args, (*extra, "--precision", q),
                                           f"{tag}_precision-{q}")) for seed in seeds_of(q, args)]
    done = map_runs(lambda item: train_run(item[2], args.jobs), planned, args.jobs, desc="precision runs",
                    engine=engine_options(args))
    accuracy: dict[str, dict[str, Any]] = {spec: {} for spec in args.methods}
    for spec in args.methods:
        for q in precisions:
            accuracy[spec][q] = summarise_runs([m for (s, pq, _), m in zip(planned, done) if s == spec and pq == q])
    gradient = {}
    for spec in args.methods:
        first = next(run for s, q, run in planned if s == spec and q == "fp32")
        gradient[spec] = measure_gradients(first.out / "model.pt", args.dataset, args.image_size, args.grad_images,
                                           args.device)
    speed = ({spec: {q: measure_speed(spec, q, args) for q in precisions} for spec in args.methods}
             if args.speed else None)
    result = run_record(args, accuracy=accuracy, gradient=gradient, **({"speed": speed} if speed else {}))
    write_tables(args.out, "precision", result, markdown(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
