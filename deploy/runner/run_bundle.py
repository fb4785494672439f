"""Run a lorsp bundle from its own files and spec alone: numpy, h5py, safetensors and onnxruntime only.

    python examples/run_bundle.py BUNDLE --images x.npy --mode fixed --precision int8 --out out.safetensors

``BUNDLE`` is a ``lorsp-export --target all`` directory; every number this script needs is in
its ``manifest.json`` (``spec``, described in lorsp's docs/bundle-spec.md) and its files.
``x.npy``: the preprocessed images, float32 ``(N, 3, L, L)`` in [0, 1] (the spec's
``preprocess`` stage), or uint8 pixels ``(N, H, W)`` grey or ``(N, 3, H, W)``, any size: they are
preprocessed here as the spec says (:func:`preprocess`, PyTorch's antialiased bilinear resize
computed in numpy, bit for bit). Every ``lorsp-export --target all`` bundle carries a copy of
this file as ``run_bundle.py``: ``python run_bundle.py . --images x.npy --out out.safetensors``
inside it.
Stages: encode (host) -> the spiking generator (``fixed``: the Loihi integers of
``prompt_generator.net`` with Lava's bit-accurate arithmetic; ``float``: ``prompt_generator.nir``
in float64, as Lava's float models) -> the prompt (host) -> the ONNX backbone (onnxruntime, CPU).

The output (safetensors, no code) holds per image ``pred``, ``logits``, ``gate_counts``,
``gates`` and ``prompted_sha256`` (sha256 of the prompted image's float32 bytes), the names of
``lorsp-cosim``'s ``cosim_images.safetensors``. Bad input: one ``error:`` line, exit code 2.
This script imports nothing of lorsp, PyTorch or Lava.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import onnxruntime as ort
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

SPEC_FORMAT = "lorsp-bundle-spec"
SPEC_VERSION = 1  # the spec version this runner implements
UV_LIMIT = 2 ** 23  # Lava's 24-bit u and v


class BundleError(Exception):
    """Bad input: printed as one ``error:`` line."""


# ----------------------------------------------------------------------------- the bundle
def open_spec(root: Path) -> dict:
    """The manifest, its spec version checked and the sha256 of every file checked."""
    path = root / "manifest.json"
    if not path.is_file():
        raise BundleError(f"{root} is not a lorsp bundle: no manifest.json")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not readable JSON: {exc}") from None
    spec = manifest.get("spec") if isinstance(manifest, dict) else None
    found = spec.get("version") if isinstance(spec, dict) and spec.get("format") == SPEC_FORMAT else None
    if found != SPEC_VERSION:
        shown = "none (written before the spec)" if found is None else found
        raise BundleError(f"{path}: bundle spec version {shown} is not supported; this runner reads spec "
                          f"version {SPEC_VERSION}")
    artifacts = manifest.get("artifacts")
    if not isinstance(artifacts, dict) or not all(isinstance(e, dict) for e in artifacts.values()):
        raise BundleError(f"{path}: artifacts must map file names to their sha256")
    inside = root.resolve()
    for name, entry in artifacts.items():
        if not isinstance(name, str) or inside not in (root / name).resolve().parents:  # no "..", no link out
            raise BundleError(f"{path}: artifact {str(name)[:80]!r} is not a file inside the bundle")
        digest = hashlib.sha256((root / name).read_bytes()).hexdigest() if (root / name).is_file() else None
        if digest != entry.get("sha256"):
            raise BundleError(f"{root / name} is missing or does not match its sha256 in the manifest")
    if "generator" not in spec or spec["prompt"].get("gate") is None:
        raise BundleError(f"{root} holds no spiking generator (an ONNX-only bundle): nothing for this runner")
    return spec


def load_images(path: Path, size: int) -> np.ndarray:
    """``(N, 3, L, L)`` float32 in [0, 1] from preprocessed floats or uint8 pixels (``(N, H, W)`` or ``(N, 3, H, W)``)."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path} is not a readable .npy array: {exc}") from None
    if x.dtype == np.uint8 and len(x) and (x.ndim == 3 or (x.ndim == 4 and x.shape[1] == 3)) and min(x.shape[-2:]):
        x = preprocess(x, size)
    if x.dtype != np.float32 or x.ndim != 4 or x.shape[1:] != (3, size, size) or len(x) == 0:
        raise BundleError(f"{path}: images must be (N, 3, {size}, {size}) float32, or uint8 pixels (N, H, W) or "
                          f"(N, 3, H, W), got {x.dtype} {x.shape}")
    if not np.all((x >= 0) & (x <= 1)):
        raise BundleError(f"{path}: image values must lie in [0, 1] (the spec's preprocess stage)")
    return np.ascontiguousarray(x)


# ----------------------------------------------------------------------------- preprocess (host)
def fma(acc: np.ndarray, a: np.ndarray, b: np.ndarray | np.float32) -> np.ndarray:
    """``acc + a b`` rounded once to float32, as a fused multiply-add (float64 holds ``a b`` exactly)."""
    return (acc.astype(np.float64) + np.asarray(a, np.float64) * np.asarray(b, np.float64)).astype(np.float32)


def resize_weights(n: int, size: int) -> list[tuple[int, list[np.float32]]]:
    """PyTorch's antialiased bilinear taps along one axis of ``n`` -> ``size`` (align_corners false), float32:
    per output ``i`` the first input ``lo`` and the normalised weights (the spec's ``preprocess.arithmetic``)."""
    f32 = np.float32
    scale = f32(f32(n) / f32(size))
    support, invscale = (scale, f32(1.0) / scale) if scale >= 1 else (f32(1.0), f32(1.0))
    taps = []
    for i in range(size):
        center = f32(float(scale) * (i + 0.5))
        lo = max(int(float(f32(center - support)) + 0.5), 0)  # float32 difference, then + 0.5, truncated
        count = min(int(float(f32(center + support)) + 0.5), n) - lo
        w = [f32((float(f32(f32(lo + j) - center)) + 0.5) * float(invscale)) for j in range(count)]
        w = [f32(1.0 - float(abs(d))) if abs(d) < 1 else f32(0.0) for d in w]
        total = f32(0.0)
        for v in w:
            total = f32(total + v)
        taps.append((lo, [f32(v / total) for v in w] if total != 0 else w))
    return taps


def resize_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``x`` resampled to ``size`` along ``axis``: ``out = in_lo w_0``, then ``fma(in_lo+j, w_j, out)`` in order."""
    x = np.moveaxis(x, axis, -1)
    out = np.empty(x.shape[:-1] + (size,), np.float32)
    for i, (lo, w) in enumerate(resize_weights(x.shape[-1], size)):
        acc = x[..., lo] * w[0]
        for j in range(1, len(w)):
            acc = fma(acc, x[..., lo + j], w[j])
        out[..., i] = acc
    return np.moveaxis(out, -1, axis)


def preprocess(pixels: np.ndarray, size: int) -> np.ndarray:
    """The spec's ``preprocess`` stage: uint8 pixels ``(N, H, W)`` or ``(N, 3, H, W)`` -> float32 ``(N, 3, L, L)``."""
    x = pixels.astype(np.float32) / np.float32(255.0)
    x = np.repeat(x[:, None], 3, axis=1) if x.ndim == 3 else x
    if x.shape[-2:] != (size, size):
        if x.shape[-1] != size:
            x = resize_axis(x, size, -1)  # the width first
        if x.shape[-2] != size:
            x = resize_axis(x, size, -2)  # then the height
        x = np.clip(x, 0.0, 1.0)
    return np.ascontiguousarray(x, np.float32)


# ----------------------------------------------------------------------------- encode (host)
def encode(x: np.ndarray, enc: dict) -> np.ndarray:
    """Input spikes ``(T, N, D)`` uint8: the spec's ``encode`` stage (values in float64, counts, spike train)."""
    x64, size, T = x.astype(np.float64), enc["size"], enc["time_steps"]
    n, L = len(x), x.shape[-1]
    if enc["name"] == "bands":
        grey = x64.mean(axis=1)
        dev = np.abs(grey - grey.mean(axis=(1, 2), keepdims=True))
        rows = dev.reshape(n, size, L // size, L).mean(axis=(2, 3))
        cols = dev.reshape(n, L, size, L // size).mean(axis=(1, 3))
        profile = np.concatenate([rows, cols], axis=1)
        peak = profile.max(axis=1, keepdims=True)
        values = np.where(peak > 1e-6, profile / np.maximum(peak, 1e-6), 0.0)
    elif enc["name"] == "pool":
        values = x64.reshape(n, 3, size, L // size, size, L // size).mean(axis=(3, 5)).reshape(n, -1)
    else:
        raise BundleError(f"encoding {enc['name']!r} is not one this runner knows")
    k = np.round(np.clip(values, 0.0, 1.0) * T).astype(np.int64)  # half to even, as the spec says
    t = np.arange(1, T + 1, dtype=np.int64)[:, None, None]
    return ((t * k) // T - ((t - 1) * k) // T).astype(np.uint8)


# ----------------------------------------------------------------------------- the generator (chip)
def lava_weights(w: np.ndarray) -> np.ndarray:
    """Lava's 8-bit Dense weight rule (a no-op for lorsp's integers, which already obey it)."""
    w = w.astype(np.int64)
    if w.min() >= 0:
        return np.clip(w, 0, 255)
    if w.max() <= 0:
        return np.clip(w, -255, 0)
    return (np.clip(w, -256, 255) >> 1) << 1


def rz_decay(x: np.ndarray, factor: int) -> np.ndarray:
    """``x factor / 2^12`` rounded towards zero, int32."""
    p = x.astype(np.int64) * factor
    return (np.sign(p) * (np.abs(p) >> 12)).astype(np.int32)


def run_fixed(netx: Path, spikes: np.ndarray, fixed: dict) -> np.ndarray:
    """Gate spikes ``(T, N, n)`` of the netx integers with Lava's bit-accurate LIF (spec ``fixed_point``)."""
    shift, bias_exp = fixed["state_shift"], fixed["bias_exp"]
    with h5py.File(netx, "r") as f:
        layers = [f["layer"][str(i)] for i in range(1, len(f["layer"]))]
        params = [(lava_weights(g["weight"][()]), g["bias"][()].astype(np.int16).astype(np.int32) << bias_exp,
                   int(g["neuron"]["iDecay"][()]), int(g["neuron"]["vDecay"][()]),
                   int(g["neuron"]["vThMant"][()]) << shift) for g in layers]
    s = spikes.astype(bool)
    for weight, bias, i_decay, v_decay, vth in params:
        T, n, d = s.shape
        a = (s.reshape(T * n, d).astype(np.int64) @ weight.T).astype(np.int32).reshape(T, n, -1)
        u = np.zeros((n, weight.shape[0]), np.int32)
        v = np.zeros_like(u)
        out = []
        for t in range(T):
            cur = rz_decay(u, 4096 - i_decay) + np.left_shift(a[t], shift)
            u = np.where(cur > UV_LIMIT, cur - 2 * UV_LIMIT, np.where(cur <= -UV_LIMIT, cur + 2 * UV_LIMIT, cur))
            v = np.clip(rz_decay(v, 4096 - v_decay) + u + bias, -(UV_LIMIT - 1), UV_LIMIT - 1).astype(np.int32)
            fired = v > vth
            v[fired] = 0
            out.append(fired)
        s = np.stack(out)
    return s.astype(np.uint8)


def nir_chain(nir: Path) -> tuple[list[dict], float]:
    """The NIR graph's nodes from input to output, each as a dict of arrays, and its ``dt``."""
    with h5py.File(nir, "r") as f:
        root = f["node"]
        succ = {a.decode(): b.decode() for a, b in root["edges"][()]}
        meta = root["metadata"] if "metadata" in root else {}
        dt = float(meta["dt"][()]) if "dt" in meta else 1e-4
        nodes, name = [], "input"
        while name in succ:
            name = succ[name]
            group = root["nodes"][name]
            nodes.append({k: group[k][()] for k in group.keys()})
    return [n for n in nodes if n["type"] != b"Output"], dt


def run_float(nir: Path, spikes: np.ndarray) -> np.ndarray:
    """Gate spikes ``(T, N, n)`` of the NIR network in float64, as Lava's float LIF (spec ``neuron``, ``reset``)."""
    nodes, dt = nir_chain(nir)
    s = spikes.astype(bool)
    for affine, lif in zip(nodes[0::2], nodes[1::2]):
        if affine["type"] != b"Affine" or lif["type"] != b"LIF":
            raise BundleError("the float runner takes Affine -> LIF chains only")
        tau = lif["tau"].astype(np.float64)
        beta = (1.0 - dt / tau).astype(np.float32)
        keep_v = 1 - (1.0 - beta.astype(np.float64))
        gain = lif["r"].astype(np.float64) * dt / tau
        weight, bias = affine["weight"].astype(np.float32), affine["bias"].astype(np.float32)
        if not np.allclose(gain, 1.0, rtol=1e-6, atol=0.0):
            weight, bias = (weight * gain[:, None]).astype(np.float32), (bias * gain).astype(np.float32)
        weight, bias = weight.astype(np.float64), bias.astype(np.float64)
        vth = lif["v_threshold"].astype(np.float32).astype(np.float64)
        T, n, d = s.shape
        a = (s.reshape(T * n, d).astype(np.float64) @ weight.T).reshape(T, n, -1)
        u = np.zeros((n, weight.shape[0]))
        v = np.zeros_like(u)
        out = []
        for t in range(T):
            u *= 0.0  # alpha = 0: no current state (du = 1)
            u += a[t]
            v *= keep_v
            v += u
            v += bias
            fired = v > vth
            v[fired] = 0.0
            out.append(fired)
        s = np.stack(out)
    return s.astype(np.uint8)


# ----------------------------------------------------------------------------- the prompt (host)
def fused_matmul(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right`` in float32, each entry summed over ``k`` in order with fused multiply-adds (the spec's
    ``prompt.sum_order``: what PyTorch's and numpy's sgemm give on x86_64 with FMA), whatever BLAS numpy has."""
    acc = left[..., :, 0:1] * right[..., 0:1, :]
    for k in range(1, left.shape[-1]):
        acc = fma(acc, left[..., :, k:k + 1], right[..., k:k + 1, :])
    return acc.astype(np.float32)


def prompted_images(x: np.ndarray, gate_spikes: np.ndarray, host: dict, prompt: dict) -> np.ndarray:
    """``x + P(x)`` float32 by the spec's ``prompt`` stage (gate rule, layout, formula, sum order)."""
    T = gate_spikes.shape[0]
    rho = gate_spikes.sum(0).astype(np.float32) / np.float32(T)
    g = (rho > 0).astype(np.float32)  # open when it fired at least once
    B, A, line = host["prompt.B"], host["prompt.A"], host["prompt.group_of_line"]
    B = B * host["prompt.mix"][:, None, :] if "prompt.mix" in host else B  # (3, L, r): B_c diag(mix_c)
    r, G, n = prompt["rank"], prompt["bands"], len(x)
    if prompt["gate"] == "band":
        gates = g.reshape(n, 2, r, G)
        rows, cols = gates[:, 0][..., line], gates[:, 1][..., line]  # (N, r, L)
        left = B[None] * rows.transpose(0, 2, 1)[:, None]  # (N, 3, L, r)
        right = A[None] * cols[:, None]  # (N, 1 or 3, r, L)
        return x + fused_matmul(left, right)
    if prompt["gate"] == "rowcol":
        rows, cols = g[:, :G][:, line] > 0, g[:, G:][:, line] > 0
        block = rows[:, None, :, None] & cols[:, None, None, :]
        return np.where(block, x + fused_matmul(B, A), x)
    raise BundleError(f"gate mode {prompt['gate']!r} is not one this runner knows")


# ----------------------------------------------------------------------------- the backbone (accelerator)
def run_backbone(path: Path, prompted: np.ndarray, contract: dict, batch: int) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if session.get_providers()[0] != "CPUExecutionProvider":
        raise BundleError(f"onnxruntime did not give {path} the CPU provider: {session.get_providers()}")
    name_in, name_out = contract["input"]["name"], contract["output"]["name"]
    return np.concatenate([session.run([name_out], {name_in: prompted[i:i + batch]})[0]
                           for i in range(0, len(prompted), batch)])


def digests(prompted: np.ndarray) -> np.ndarray:
    return np.stack([np.frombuffer(hashlib.sha256(np.ascontiguousarray(p, np.float32).tobytes()).digest(), np.uint8)
                     for p in prompted])


def run(root: Path, images: Path, mode: str, precision: str, batch: int) -> dict[str, np.ndarray]:
    """Every stage of the bundle at ``root`` on ``images``; the per-image tensors."""
    spec = open_spec(root)
    files = spec["backbone"]["files"]
    if precision not in files:
        raise BundleError(f"{root} holds no {precision} backbone (it has {', '.join(files)})")
    x = load_images(images, spec["preprocess"]["image_size"])
    host_path = root / spec["prompt"]["tensors"]["file"]
    host = load_file(str(host_path))
    with safe_open(str(host_path), framework="np") as f:
        if (f.metadata() or {}).get("encoding") != spec["encode"]["name"]:
            raise BundleError(f"{host_path} and the spec name different encodings")
    spikes = encode(x, spec["encode"])
    gen = spec["generator"]
    gate_spikes = (run_fixed(root / gen["files"]["netx"], spikes, gen["fixed_point"]) if mode == "fixed"
                   else run_float(root / gen["files"]["nir"], spikes))
    prompted = prompted_images(x, gate_spikes, host, spec["prompt"]).astype(np.float32)
    logits = run_backbone(root / files[precision], prompted, spec["backbone"], batch)
    counts = gate_spikes.astype(np.int32).sum(0)
    return {"pred": logits.argmax(1).astype(np.int64), "logits": logits.astype(np.float32), "gate_counts": counts,
            "gates": (counts > 0).astype(np.uint8), "prompted_sha256": digests(prompted)}


def compare(arrays: dict[str, np.ndarray], cosim_file: Path) -> list[str]:
    """Lines saying how many images agree with ``lorsp-cosim``'s ``cosim_images.safetensors`` (same images)."""
    try:
        cosim = load_file(str(cosim_file))
    except Exception as exc:  # safetensors raises its own error types
        raise BundleError(f"{cosim_file} is not a readable safetensors file: {exc}") from None
    n = len(arrays["pred"])
    if len(cosim.get("pred_pipeline", [])) != n:
        raise BundleError(f"{cosim_file} holds {len(cosim.get('pred_pipeline', []))} images, these results {n}")
    same = {"gates": (arrays["gate_counts"] == cosim["gate_counts"]).all(1),
            "prompted images": (arrays["prompted_sha256"] == cosim["prompted_sha256"]).all(1),
            "predictions": arrays["pred"] == cosim["pred_pipeline"]}
    return [f"{name} equal to lorsp-cosim's: {int(ok.sum())}/{n} images" for name, ok in same.items()]


def check_out(out: Path, root: Path, inputs: list[Path]) -> None:
    """Refuse an ``out`` that is an input of this run: the images, the compared file, the manifest or a bundle file
    (``--force`` replaces an earlier result, never what the run reads)."""
    target = out.resolve()
    names = ["manifest.json"]
    try:
        names += list(json.loads((root / "manifest.json").read_text()).get("artifacts", {}))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        pass  # open_spec reports an unreadable manifest
    protected = [p.resolve() for p in inputs] + [(root / str(n)).resolve() for n in names]
    if target in protected or target.is_dir():
        raise BundleError(f"--out {out} is {'a directory' if target.is_dir() else 'an input of this run'}: "
                          f"name a new .safetensors file")


def write(out: Path, arrays: dict[str, np.ndarray], force: bool) -> None:
    """Write ``out`` atomically (a temporary file renamed), never over an existing file without ``force``."""
    if out.exists() and not force:
        raise BundleError(f"output {out} already exists: pass --force to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="a lorsp-export --target all directory")
    p.add_argument("--images", required=True,
                   help=".npy: (N, 3, L, L) float32 in [0, 1], or uint8 pixels (N, H, W) or (N, 3, H, W), any size")
    p.add_argument("--mode", choices=("fixed", "float"), default="fixed",
                   help="fixed: the Loihi integers (what the chip computes); float: the NIR network in float64")
    p.add_argument("--precision", default="fp32", help="which ONNX file of the spec runs the backbone")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", required=True, help="per-image results (.safetensors) to create")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--compare", default=None, metavar="COSIM_IMAGES",
                   help="lorsp-cosim's cosim_images.safetensors for the same images: print what agrees "
                        "(exit code 1 when anything differs)")
    args = p.parse_args(argv)
    try:
        if args.batch_size < 1:
            raise BundleError(f"--batch-size must be at least 1, got {args.batch_size}")
        check_out(Path(args.out), Path(args.bundle),
                  [Path(args.images), *([Path(args.compare)] if args.compare else [])])
        if Path(args.out).exists() and not args.force:
            raise BundleError(f"output {args.out} already exists: pass --force to overwrite it")
        arrays = run(Path(args.bundle), Path(args.images), args.mode, args.precision, args.batch_size)
        lines = compare(arrays, Path(args.compare)) if args.compare else []
        write(Path(args.out), arrays, args.force)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, IndexError, AttributeError) as exc:  # a spec field missing or of another type
        print(f"error: {args.bundle}: the manifest's spec is malformed ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0][:120] if str(exc) else ''})", file=sys.stderr)
        return 2
    print(f"{len(arrays['pred'])} images, {args.mode} generator, {args.precision} backbone: "
          f"{100 * arrays['gates'].mean():.1f}% of gates open -> {args.out}")
    for line in lines:
        print(line)
    n = len(arrays["pred"])
    return 1 if any(not line.endswith(f" {n}/{n} images") for line in lines) else 0


if __name__ == "__main__":
    raise SystemExit(main())
