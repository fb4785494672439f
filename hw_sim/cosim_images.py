"""``cosim_images.safetensors``: what a co-simulation gave for every image, for checks outside lorsp.

Beside ``cosim.json`` (which describes the file under ``per_image``), one row per image,
in the order of the split's first ``N`` images:

=====================  ==============  ===========================================================
tensor                 dtype, shape    meaning
=====================  ==============  ===========================================================
``index``              int64 (N,)      the image's index in its data set's item list (the test list
                                       when the set has one), not its position in the split
                                       (:data:`deploy.outputs.INDEX_RULE`)
``label``              int64 (N,)      its label
``pred_pipeline``      int64 (N,)      the split pipeline's prediction (chip simulator + ONNX)
``pred_pytorch``       int64 (N,)      the PyTorch model's prediction
``logits_pipeline``    float32 (N, C)  the ONNX backbone's logits in the pipeline
``gate_counts``        int32 (N, n)    spikes of every gate neuron in the ``T`` steps (the chip's)
``gates``              uint8 (N, n)    1 where the gate is open (it fired at least once)
``prompted_sha256``    uint8 (N, 32)   sha256 of the prompted image ``x + P(x)``, float32, C order
=====================  ==============  ===========================================================

The tensors' meanings live in :mod:`deploy.outputs` (the bundle's README names them too).
safetensors holds no code, so any reader (``safetensors.numpy.load_file``) may open it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.numpy import save_file

from deploy.outputs import IMAGES_FILE, IMAGES_FORMAT, MEANINGS
from lorsp.plumbing.fileio import atomic_write

__all__ = ["IMAGES_FILE", "IMAGES_FORMAT", "MEANINGS", "describe", "per_image_arrays", "prompted_digests", "write_images"]


def prompted_digests(prompted: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(N, 32)`` uint8: the sha256 of every image of ``prompted`` ``(N, 3, L, L)`` as float32 C-order bytes."""
    arr = np.ascontiguousarray(prompted.numpy() if isinstance(prompted, torch.Tensor) else prompted, dtype=np.float32)
    return np.stack([np.frombuffer(hashlib.sha256(img.tobytes()).digest(), dtype=np.uint8) for img in arr])


def per_image_arrays(*, indices: np.ndarray, labels: np.ndarray, logits: np.ndarray, logits_ref: np.ndarray,
                     gate_spikes: np.ndarray, prompted: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
    """The tensors of the file; ``gate_spikes`` ``(T, N, n)`` from the chip, ``prompted`` batch by batch."""
    counts = gate_spikes.astype(np.int32).sum(0)
    arrays = {"index": np.asarray(indices, np.int64), "label": np.asarray(labels, np.int64),
              "pred_pipeline": logits.argmax(1).astype(np.int64), "pred_pytorch": logits_ref.argmax(1).astype(np.int64),
              "logits_pipeline": np.ascontiguousarray(logits, dtype=np.float32), "gate_counts": counts,
              "gates": (counts > 0).astype(np.uint8),
              "prompted_sha256": np.concatenate([prompted_digests(p) for p in prompted])}
    return {k: np.ascontiguousarray(v) for k, v in arrays.items()}


def describe(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> dict[str, Any]:
    """``cosim.json``'s ``per_image`` block: the file, its format and every tensor's shape and meaning."""
    return {"file": IMAGES_FILE, "format": IMAGES_FORMAT, "metadata": metadata,
            "tensors": {name: {"dtype": str(a.dtype), "shape": list(a.shape), "meaning": MEANINGS[name][1]}
                        for name, a in arrays.items()}}


def write_images(arrays: dict[str, np.ndarray], metadata: dict[str, str], out_dir: str | Path) -> Path:
    """Write ``cosim_images.safetensors`` into ``out_dir``, atomically."""
    meta = {"format": IMAGES_FORMAT, **metadata}
    return atomic_write(Path(out_dir) / IMAGES_FILE, lambda tmp: save_file(arrays, str(tmp), metadata=meta))
