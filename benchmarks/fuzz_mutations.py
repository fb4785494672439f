"""Mutations shared by the fuzzers (:mod:`benchmarks.fuzz`, :mod:`benchmarks.fuzz_surfaces`): bytes, arrays, JSON.

Each takes a seeded ``numpy`` generator and returns what it did, so that a failing case is named by its mutation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One byte-level mutation of ``data``."""
    buf = bytearray(data)
    kind = int(rng.integers(5))
    if kind == 0 or len(buf) < 16:
        n = int(rng.integers(1, 9))
        for i in rng.integers(0, len(buf), n):
            buf[int(i)] ^= int(rng.integers(1, 256))
        return bytes(buf), f"flip {n} bytes"
    if kind == 1:
        cut = int(rng.integers(0, len(buf)))
        return bytes(buf[:cut]), f"truncate at {cut}"
    if kind == 2:
        at, n = int(rng.integers(0, len(buf))), int(rng.integers(1, 64))
        return bytes(buf[:at] + rng.integers(0, 256, n, dtype=np.uint8).tobytes() + buf[at:]), f"insert {n} at {at}"
    if kind == 3:
        at, n = int(rng.integers(0, len(buf))), int(rng.integers(1, 256))
        buf[at:at + n] = bytes(len(buf[at:at + n]))
        return bytes(buf), f"zero {n} at {at}"
    at, n = int(rng.integers(0, len(buf))), int(rng.integers(1, 128))
    return bytes(buf[:at] + buf[at:at + n] + buf[at:]), f"duplicate {n} at {at}"


def hostile_array(value: np.ndarray, rng: np.random.Generator) -> tuple[Any, str]:
    """``value`` replaced by one that a reader must refuse or handle: NaN, Inf, other dtypes and shapes."""
    kind = int(rng.integers(12))
    v = np.array(value, copy=True)
    if v.dtype.kind not in "biuf":  # a type tag ("CUBA", "dense"): mutate a number array of its shape
        v = np.ones(v.shape or (1,), np.float32)
    if kind == 0 and v.dtype.kind == "f" and v.size:
        v.reshape(-1)[int(rng.integers(v.size))] = np.nan
        return v, "a NaN"
    if kind == 1 and v.dtype.kind == "f" and v.size:
        v.reshape(-1)[int(rng.integers(v.size))] = -np.inf if rng.random() < 0.5 else np.inf
        return v, "an infinity"
    if kind == 2:
        return v.astype(bool), "bool dtype"
    if kind == 3:
        return v.astype(np.float16), "float16 dtype"
    if kind == 4:
        return np.zeros(v.shape, dtype=[("a", "<f4"), ("b", "<i4")]), "compound dtype"
    if kind == 5:
        return np.full(v.shape or (1,), b"x", dtype="S1"), "string dtype"
    if kind == 6:
        return v.reshape(-1)[: max(0, v.size - 1)], "one value fewer, flattened"
    if kind == 7:
        return np.zeros((0,), dtype=v.dtype), "empty"
    if kind == 8:
        return (v.T.copy() if v.ndim >= 2 else v.reshape(-1, 1)), "transposed"
    if kind == 9:
        return (-np.abs(v) - 1).astype(v.dtype) if v.dtype.kind in "fi" else v, "negative"
    if kind == 10:
        return np.asarray(1e38 if v.dtype.kind == "f" else 2 ** 31 - 1, dtype=v.dtype), "a huge scalar"
    return v.astype(np.int64) if v.dtype.kind == "f" else v.astype(np.float32), "int/float swapped"


BYTE_LEVEL_SHARE = 0.3
"""The share of structural mutators' files that get a byte-level edit instead."""


def maybe_byte_level(src: Path, dst: Path, rng: np.random.Generator) -> str | None:
    """With probability :data:`BYTE_LEVEL_SHARE`, ``src`` with one :func:`mutate_bytes` edit written to ``dst``
    (what was done); otherwise None and nothing written."""
    if rng.random() >= BYTE_LEVEL_SHARE:
        return None
    data, what = mutate_bytes(src.read_bytes(), rng)
    dst.write_bytes(data)
    return what


def _pick_path(obj: Any, rng: np.random.Generator, depth: int = 0) -> list:
    """A random path of keys/indices into a JSON-like object."""
    if depth > 6 or not isinstance(obj, (dict, list)) or not obj or rng.random() < 0.3:
        return []
    keys = list(obj) if isinstance(obj, dict) else list(range(len(obj)))
    key = keys[int(rng.integers(len(keys)))]
    return [key, *_pick_path(obj[key], rng, depth + 1)]


def hostile_value(rng: np.random.Generator) -> Any:
    return [None, "", "x" * 200, -1, 0, 2 ** 70, 1e308, float("nan"), True, [], {}, [[[[1]]]], "../../etc/passwd",
            "/etc/passwd", {"sha256": "0" * 64, "bytes": 1}, "imagefolder:/proc/self", "A" * 64, 3.5,
            ["a", 1, None]][int(rng.integers(19))]


def edit_json(obj: Any, rng: np.random.Generator) -> str:
    """Change ``obj`` (a manifest or config) in place at a random path; the description."""
    path = _pick_path(obj, rng)
    if not path:
        if isinstance(obj, dict):
            key = ["run_this", "artifacts", "onnx", "integrity", "classes"][int(rng.integers(5))]
            obj[key] = hostile_value(rng)
            return f"top-level {key} set"
        return "nothing"
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    kind = int(rng.integers(4))
    where = "/".join(map(str, path))[:80]
    if kind == 0:
        del parent[last]
        return f"delete {where}"
    if kind == 1 and isinstance(parent, dict):
        parent[hostile_value(rng) if rng.random() < 0.2 and False else f"{last}_x"] = hostile_value(rng)
        return f"extra key beside {where}"
    if kind == 2 and isinstance(parent, dict) and isinstance(last, str):
        parent[["../" + last, "/tmp/" + last, last + "/..", "", "a\\b"][int(rng.integers(5))]] = parent.pop(last)
        return f"key {where} renamed"
    parent[last] = hostile_value(rng)
    return f"{where} replaced"
