"""Parity and accuracy of every ONNX precision against PyTorch: the measurements the export's bounds come from.

    python benchmarks/onnx_parity.py runs/demo/train/model.pt --samples 256 --json runs/bench/onnx_parity.json

Exports the checkpoint's backbone and head in fp32, fp16, int8 (onnxruntime CPU) and
int8-trt (TensorRT S8S8) into a temporary directory with the bounds of
``export.onnx_checks`` off, and prints per precision the largest |logit difference| from
PyTorch on the first ``--samples`` test images, the share of equal predictions, and the
accuracy on the validation split with its drop against fp32, beside the bounds.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.onnx_runtime import PRECISIONS  # noqa: E402
from export.onnx_checks import ACCURACY_DROP_LIMITS, PARITY_TOLERANCES, RELATIVE_PARITY  # noqa: E402
from export.onnx_target import export_onnx_files, load_check_images  # noqa: E402
from lorsp.model import load  # noqa: E402
from lorsp.plumbing.provenance import machine  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--samples", type=int, default=64, help="test images for the logit parity")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    model = load(args.checkpoint).eval()
    images = load_check_images(model.config, None, args.samples, model.classes)
    with tempfile.TemporaryDirectory(prefix="lorsp-parity-") as work:
        report = export_onnx_files(model, work, PRECISIONS, check_images=images.test, calibration=images.splits.train,
                                   validation=images.splits.val, enforce=False)
    rows = {}
    for precision in PRECISIONS:
        parity, accuracy = report["parity"][precision], report["accuracy"][precision]
        rows[precision] = {"max_abs_logit_diff": parity["max_abs_logit_diff"],
                           "relative_logit_diff": parity["relative_logit_diff"],
                           "max_abs_logit": parity["max_abs_logit"],
                           "prediction_agreement": parity["prediction_agreement"], "accuracy": accuracy["accuracy"],
                           "drop_vs_fp32": accuracy["drop_vs_fp32"], "tolerance": PARITY_TOLERANCES[precision],
                           "drop_limit": ACCURACY_DROP_LIMITS[precision]}
        kind = "x max |logit|" if RELATIVE_PARITY[precision] else "absolute"
        print(f"{precision:9s} max |logit diff| {parity['max_abs_logit_diff']:.3g} = "
              f"{parity['relative_logit_diff']:.4f} x max |logit| {parity['max_abs_logit']:.3g} (bound "
              f"{PARITY_TOLERANCES[precision]:g} {kind}) on {parity['samples']} test images, "
              f"{100 * parity['prediction_agreement']:.2f}% equal predictions; accuracy {accuracy['accuracy']:.4f} "
              f"on {accuracy['samples']} val images, drop {100 * accuracy['drop_vs_fp32']:+.2f} points (bound "
              f"{100 * ACCURACY_DROP_LIMITS[precision]:g})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "dataset": images.dataset,
                                               "machine": machine(), "precisions": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
