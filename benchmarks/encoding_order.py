"""Why the encoding computes in float64: float32 counts from PyTorch and from numpy, compared.

    python benchmarks/encoding_order.py --dataset sklearn-digits --image-size 32 --limit 1000

The bands encoding (``G`` bands, ``T`` steps) of the first ``--limit`` test images, computed
three ways: PyTorch in float32 (encoding version 1), numpy in float32 (the same formula,
numpy's summation order), and lorsp's encoding (version 2, float64) against numpy in
float64. Prints how many images and counts ``round(v T)`` differ in each pair.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lorsp.data import load_split_images  # noqa: E402
from lorsp.encoding import Encoding, band_values  # noqa: E402


def numpy_counts(x: np.ndarray, bands: int, steps: int, dtype: type) -> np.ndarray:
    """The bands encoding's counts in numpy at ``dtype`` (the formula of lorsp.encoding)."""
    x = x.astype(dtype)
    n, L = len(x), x.shape[-1]
    grey = x.mean(1, keepdims=True)
    dev = np.abs(grey - grey.mean((2, 3), keepdims=True))
    rows = dev.reshape(n, bands, L // bands, L).mean((2, 3))
    cols = dev.reshape(n, L, bands, L // bands).mean((1, 3))
    profile = np.concatenate([rows, cols], 1)
    peak = profile.max(1, keepdims=True)
    v = np.clip(np.where(peak > 1e-6, profile / np.maximum(peak, dtype(1e-6)), 0), 0, 1).astype(dtype)
    return np.round(v * dtype(steps)).astype(np.int64)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="sklearn-digits")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--bands", type=int, default=16)
    p.add_argument("--time-steps", type=int, default=8)
    args = p.parse_args()
    x, _ = load_split_images(args.dataset, args.image_size, args.limit)
    torch32 = torch.round(band_values(x, args.bands) * args.time_steps).to(torch.int64).numpy()
    lorsp64 = Encoding("bands", args.bands, args.time_steps).counts(x).numpy()
    pairs = {"float32: PyTorch vs numpy": (torch32, numpy_counts(x.numpy(), args.bands, args.time_steps, np.float32)),
             "float64: lorsp (version 2) vs numpy": (lorsp64, numpy_counts(x.numpy(), args.bands, args.time_steps,
                                                                            np.float64))}
    for name, (a, b) in pairs.items():
        print(f"{name}: {int((a != b).any(1).sum())} of {len(x)} images, {int((a != b).sum())} of {a.size} "
              f"counts differ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
