"""Hostile-file fuzzing of lorsp's readers: NIR, netx, ONNX, host, manifest files, checkpoints, resume files, image
folders and command lines.

    python benchmarks/fuzz.py --cases 1000 --out runs/fuzz          # makes a tiny checkpoint and bundle first
    python benchmarks/fuzz.py --cases 1000 --checkpoint runs/x/model.pt --bundle runs/x/loihi --out runs/fuzz

Each case takes a valid file (from a tiny LoRSP run and its ``--target loihi --no-simulate``
bundle; for ONNX a model of the backbone file's contract, ``prompted_image (N, 3, 32, 32) ->
logits (N, 10)``, small enough to open a thousand times), mutates it (byte flips, truncation,
inserted and zeroed blocks; and per format structural edits: NaN and infinite values, other
dtypes and shapes, removed and extra fields, links and external storage, a renamed input, an
edited manifest resealed or not, hostile pickles; and issue 28's classes, :mod:`benchmarks.fuzz_hostile`: HDF5
datasets declaring terabytes, references and virtual datasets, artifact names no file system holds, config keys
no option has, values nested 100,000 deep, torch files whose storages declare gigabytes, configs storing paths),
and gives it to the reader the console scripts use, in a worker process with a time limit. Resume files, image
folders and command lines are the surfaces of :mod:`benchmarks.fuzz_surfaces`. Every case ends as one of

* ``clean``: refused with a :class:`~lorsp.plumbing.errors.LorspError` (one ``error:`` line at the
  console), or accepted and the result keeps every promise of its reader (finite tensors of the
  expected dtypes; a network that simulates; an ONNX model that runs to finite logits; a netx
  file equal to the NIR network's; an unsealed manifest equal to the original);
* ``traceback``: any other exception;
* ``hang``: no answer within ``--case-timeout`` seconds;
* ``wrong success``: accepted but a promise broken, by any reader: a stored path kept that no command line
  named, or the worker's peak memory raised by more than :data:`MAX_GROWTH_MIB` (a file that grew on load).

Cases are seeded by ``(--seed, format, index)``: a run is repeatable, and a failing case is
named by its index and mutation. The tally goes to ``OUT/fuzz.json`` and ``OUT/fuzz.md``.
"""
from __future__ import annotations

import copy
import json
import multiprocessing as mp
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx.numpy_helper  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from benchmarks.fuzz_hostile import (DEEP, hostile_hdf5_object, hostile_torch_file, long_name,  # noqa: E402
                                     stored_path_change)
from benchmarks.fuzz_surfaces import (SCRIPTS, TINY_TRAIN, as_console_script, base_argv, make_folder,  # noqa: E402
                                      mutate_argv, mutate_folder, mutate_resume, read_argv_case,
                                      read_folder_case, read_resume_case, unnamed_paths)
from benchmarks.fuzz_mutations import edit_json, hostile_array, maybe_byte_level, mutate_bytes  # noqa: E402
from deploy.bundle import HOST_FILE, MANIFEST_FILE, NETX_FILE, NIR_FILE, open_bundle  # noqa: E402
from deploy.host import HOST_DTYPES, read_host  # noqa: E402
from deploy.manifest_schema import manifest_digest  # noqa: E402
from deploy.netx_layout import check_netx  # noqa: E402
from deploy.nir_reader import load_network  # noqa: E402
from deploy.onnx_runtime import check_onnx_contract, load_onnx_checked, make_session, run_logits  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402
from lorsp.model import model_from_state, read_checkpoint  # noqa: E402

FORMATS = ("nir", "netx", "onnx", "host", "manifest", "checkpoint", "resume", "folder", "argv")
OUTCOMES = ("clean", "traceback", "hang", "wrong success", "generator error")
"""The last is a bug of this file, not of a reader; it is listed so that it cannot hide."""
ONNX_SIZE, ONNX_CLASSES = 32, 10


# --------------------------------------------------------------------------- the valid files
@dataclass
class Base:
    """The valid files every case starts from, and what their readers compare with."""

    checkpoint: Path
    bundle: Path
    onnx: Path
    folder: Path | None = None
    """A valid ``imagefolder:`` (default: made beside the ONNX file)."""
    state: dict[str, Any] = field(default_factory=dict)
    resume: dict[str, Any] = field(default_factory=dict)
    """The run's resume file (``last.pt`` beside the checkpoint), loaded."""
    network: Any = None
    scale: np.ndarray | None = None
    backbone: Any = None
    manifest: dict[str, Any] = field(default_factory=dict)
    spikes: np.ndarray | None = None
    images: np.ndarray | None = None

    @property
    def resume_path(self) -> Path:
        return self.checkpoint.parent / "last.pt"

    def load(self) -> "Base":
        from lorsp.backbones import create_backbone

        self.state = read_checkpoint(self.checkpoint)
        self.resume = torch.load(self.resume_path, weights_only=True)
        if self.folder is None:
            self.folder = make_folder(self.onnx.parent / "images")
        self.network = load_network(self.bundle / NIR_FILE)
        self.scale = read_host(self.bundle / HOST_FILE).fixed_point_scale.numpy()
        self.backbone = create_backbone(self.state["config"]["backbone"], self.state["config"].get("weights"))
        self.manifest = json.loads((self.bundle / MANIFEST_FILE).read_text())
        rng = np.random.default_rng(0)
        self.spikes = (rng.random((4, 3, self.network.input_size)) > 0.5).astype(np.uint8)
        self.images = rng.random((2, 3, ONNX_SIZE, ONNX_SIZE)).astype(np.float32)
        return self


def contract_onnx(path: Path) -> Path:
    """A small model of the backbone file's contract: ``logits = W^T mean_pixels(x) + b``."""
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(rng.normal(size=(3, ONNX_CLASSES)).astype(np.float32), "W")
    b = onnx.numpy_helper.from_array(rng.normal(size=(ONNX_CLASSES,)).astype(np.float32), "b")
    nodes = [helper.make_node("GlobalAveragePool", ["prompted_image"], ["pooled"], name="pool"),
             helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
             helper.make_node("MatMul", ["flat", "W"], ["mm"], name="matmul"),
             helper.make_node("Add", ["mm", "b"], ["logits"], name="add")]
    graph = helper.make_graph(
        nodes, "contract",
        [helper.make_tensor_value_info("prompted_image", TensorProto.FLOAT, ["N", 3, ONNX_SIZE, ONNX_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", ONNX_CLASSES])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.23 reads (onnx 1.23 writes a newer one by default)
    onnx.save(model, str(path))
    return path


def make_base(work: Path, checkpoint: Path | None, bundle: Path | None) -> Base:
    """The valid files: given ones, or a tiny training run and its Loihi bundle made in ``work``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if checkpoint is None:
        run = work / "run"
        if not (run / "model.pt").exists():
            subprocess.run([sys.executable, "-m", "lorsp.train", *TINY_TRAIN, "--out", str(run)], check=True,
                           cwd=ROOT, env=env)
        checkpoint = run / "model.pt"
    if bundle is None:
        bundle = work / "bundle"
        if not bundle.exists():
            subprocess.run([sys.executable, "-m", "pipeline.export_cli", "--target", "loihi", str(checkpoint), "-o",
                            str(bundle), "--no-simulate", "--samples", "8", "--quiet"], check=True, cwd=ROOT,
                           env=env)
    return Base(Path(checkpoint), Path(bundle), contract_onnx(work / "contract.onnx")).load()


# --------------------------------------------------------------------------- mutations
def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def mutate_hdf5(src: Path, dst: Path, rng: np.random.Generator) -> str:
    """A structural edit of an HDF5 file (NIR or netx) at a random dataset, or a byte-level one."""
    what = maybe_byte_level(src, dst, rng)
    if what is not None:
        return what
    shutil.copyfile(src, dst)
    with h5py.File(dst, "a") as f:
        names = _datasets(f)
        name = names[int(rng.integers(len(names)))]
        kind = int(rng.integers(9))
        if kind == 8:
            return hostile_hdf5_object(f, name, src, rng)
        if kind == 0:
            del f[name]
            return f"delete {name}"
        if kind == 1:
            parent = name.rsplit("/", 1)[0] if "/" in name else ""
            extra = f"{parent}/extra_{int(rng.integers(100))}".lstrip("/")
            if extra in f:
                del f[extra]
            f.create_dataset(extra, data=np.ones(3))
            return f"extra dataset beside {name}"
        if kind == 2:
            del f[name]
            f[name] = h5py.ExternalLink("/etc/passwd" if rng.random() < 0.5 else str(src), "/" + name)
            return f"external link at {name}"
        if kind == 3:
            del f[name]
            f[name] = h5py.SoftLink("/" + names[int(rng.integers(len(names)))])
            return f"soft link at {name}"
        if kind == 4:
            shape = f[name].shape or (1,)
            del f[name]
            f.create_dataset(name, shape=shape, dtype="<f4", external=[("/etc/passwd", 0, 4 * int(np.prod(shape)))])
            return f"external storage at {name}"
        value = f[name][()]
        del f[name]
        new, what = hostile_array(np.asarray(value), rng)
        try:
            f.create_dataset(name, data=new)
        except (TypeError, ValueError):
            if name in f:
                del f[name]
            f.create_dataset(name, data=np.asarray(value))
            return f"{what} at {name} (not storable: unchanged)"
        return f"{what} at {name}"


def mutate_host(src: Path, dst: Path, rng: np.random.Generator) -> str:
    what = maybe_byte_level(src, dst, rng)
    if what is not None:
        return what
    tensors = load_file(src)
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata() or {})
    key = sorted(tensors)[int(rng.integers(len(tensors)))]
    kind = int(rng.integers(6))
    if kind == 0:
        del tensors[key]
        what = f"delete {key}"
    elif kind == 1:
        tensors[f"extra.{int(rng.integers(100))}"] = torch.ones(2)
        what = "extra tensor"
    elif kind == 2:
        mkey = sorted(meta)[int(rng.integers(len(meta)))]
        meta[mkey] = ["", "lorsp-host-v1", "pool", "rank", "x" * 300, "per-channel"][int(rng.integers(6))]
        what = f"metadata {mkey}={meta[mkey][:12]!r}"
    elif kind == 3 and key.startswith("encoding."):
        tensors[key] = torch.tensor([[0], [-1], [10 ** 9], [3]][int(rng.integers(4))], dtype=torch.int64)
        what = f"{key}={tensors[key].tolist()}"
    else:
        new, what = hostile_array(tensors[key].numpy(), rng)
        if new.dtype.kind not in "biuf":
            new = new.view(np.uint8) if new.dtype.itemsize else np.zeros(1, np.uint8)
            what += " (as uint8)"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(new))
        what = f"{what} at {key}"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(dst), metadata=meta)
    return what


def mutate_onnx(src: Path, dst: Path, rng: np.random.Generator) -> str:
    what = maybe_byte_level(src, dst, rng)
    if what is not None:
        return what
    model = onnx.load(str(src))
    g = model.graph
    kind = int(rng.integers(9))
    if kind == 0:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        arr = onnx.numpy_helper.to_array(t).copy()
        arr.reshape(-1)[int(rng.integers(arr.size))] = [np.nan, np.inf, -np.inf][int(rng.integers(3))]
        t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
        what = f"non-finite value in {t.name}"
    elif kind == 1:
        v = g.input[0] if rng.random() < 0.5 else g.output[0]
        old = v.name
        v.name = ["image", "input", "x", "logits2", ""][int(rng.integers(5))]
        for node in g.node:
            node.input[:] = [v.name if n == old else n for n in node.input]
            node.output[:] = [v.name if n == old else n for n in node.output]
        what = f"renamed {old} to {v.name!r}"
    elif kind == 2:
        v = g.input[0] if rng.random() < 0.5 else g.output[0]
        dims = v.type.tensor_type.shape.dim
        dims[int(rng.integers(1, len(dims)))].dim_value = int(rng.choice([1, 7, 64, 3, 10 ** 6]))
        what = f"dims of {v.name} changed"
    elif kind == 3:
        v = g.input[0] if rng.random() < 0.5 else g.output[0]
        v.type.tensor_type.elem_type = int(rng.choice([TensorProto.FLOAT16, TensorProto.INT64, TensorProto.DOUBLE]))
        what = f"elem type of {v.name} changed"
    elif kind == 4:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        t.external_data.add(key="location", value=["/etc/passwd", "../w.bin", "w.bin"][int(rng.integers(3))])
        t.ClearField("raw_data")
        what = f"external data for {t.name}"
    elif kind == 5:
        del g.node[int(rng.integers(len(g.node)))]
        what = "node removed"
    elif kind == 6:
        g.node[int(rng.integers(len(g.node)))].op_type = ["Relu", "NoSuchOp", "Loop", "Identity"][int(rng.integers(4))]
        what = "op type changed"
    elif kind == 7:
        model.opset_import[0].version = int(rng.choice([1, 5, 30, 999]))
        what = "opset changed"
    else:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        arr = onnx.numpy_helper.to_array(t)
        new, what = hostile_array(arr, rng)
        try:
            t.CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(new), t.name))
        except (TypeError, ValueError, KeyError):
            what += " (not storable: unchanged)"
        what = f"{what} at {t.name}"
    try:
        onnx.save(model, str(dst))
    except (ValueError, TypeError):
        dst.write_bytes(model.SerializeToString())
    return what


def mutate_manifest(bundle: Path, dst: Path, base_manifest: dict, rng: np.random.Generator) -> tuple[str, bool]:
    """``dst``: a hard-linked copy of ``bundle`` with a mutated manifest; the description and whether resealed."""
    shutil.copytree(bundle, dst, copy_function=os.link)
    (dst / MANIFEST_FILE).unlink()
    if rng.random() < 0.25:
        data, what = mutate_bytes(json.dumps(base_manifest, indent=2).encode(), rng)
        (dst / MANIFEST_FILE).write_bytes(data)
        return what, False
    manifest = copy.deepcopy(base_manifest)
    if rng.random() < 0.25:
        return _issue28_manifest(dst, manifest, rng)
    what = edit_json(manifest, rng)
    if rng.random() < 0.15:
        manifest["checks"] = json.loads("[" * 50 + "]" * 50)
        what += ", deep nesting"
    sealed = rng.random() < 0.6
    if sealed:
        try:
            manifest["integrity"] = {"sha256": manifest_digest(manifest)}
        except (TypeError, ValueError):
            sealed = False
    (dst / MANIFEST_FILE).write_text(json.dumps(manifest))
    return what + (", resealed" if sealed else ""), sealed


def _issue28_manifest(dst: Path, manifest: dict, rng: np.random.Generator) -> tuple[str, bool]:
    """Issue 28's manifests: an artifact name no file system holds, a config storing a path or a key no option
    has (all resealed), a config value nested 100,000 deep (not resealable)."""
    kind = int(rng.integers(4))
    if kind == 3:
        text = json.dumps(manifest).replace('"config": {', '"config": {"deep": ' + "[" * DEEP + "]" * DEEP + ", ", 1)
        (dst / MANIFEST_FILE).write_text(text)
        return "config value nested 100,000 deep", False
    if kind == 0:
        name = long_name(rng)
        manifest["artifacts"][name] = dict(manifest["artifacts"]["README.md"])
        what = f"artifact name of {len(name.encode('utf-8', 'surrogatepass'))} bytes"
    elif kind == 1:
        changes, what = stored_path_change(rng)
        manifest["config"].update(changes)
        what = "config stores " + what
    else:
        manifest["config"][["treshold", "run_this", "x" * 300][int(rng.integers(3))]] = 1.0
        what = "config key no option has"
    manifest["integrity"] = {"sha256": manifest_digest(manifest)}
    (dst / MANIFEST_FILE).write_text(json.dumps(manifest))
    return what + ", resealed", True


class _Evil:
    """Pickles to a call of ``os.system``: what weights_only must never run."""

    def __reduce__(self):
        return (os.system, ("echo PWNED > /tmp/lorsp-fuzz-pwned",))


def mutate_checkpoint(src: Path, dst: Path, base_state: dict, rng: np.random.Generator) -> str:
    kind = int(rng.random() * 13)
    if kind >= 10:
        return hostile_torch_file(src, dst, base_state, rng, kind - 10)
    if kind <= 1:
        data, what = mutate_bytes(src.read_bytes(), rng)
        dst.write_bytes(data)
        return what
    if kind == 2:
        choice = int(rng.integers(3))
        if choice == 0:
            dst.write_bytes(pickle.dumps({"format": "lorsp-checkpoint", "x": _Evil()}))
            return "raw pickle calling os.system"
        state = copy.copy(base_state)
        state["config"] = {**state["config"], "evil": _Evil()} if choice == 1 else state["config"]
        if choice == 2:
            state["prompt"] = {**state["prompt"], "B": _Evil()}
        torch.save(state, dst)
        return "torch file carrying os.system"
    state = {k: (copy.deepcopy(v) if k != "prompt" and k != "head" else {n: t.clone() for n, t in v.items()})
             for k, v in base_state.items()}
    if kind <= 5:
        part = "prompt" if rng.random() < 0.5 else "head"
        key = sorted(state[part])[int(rng.integers(len(state[part])))]
        new, what = hostile_array(state[part][key].numpy(), rng)
        if new.dtype.kind not in "biuf":
            new = np.zeros(1, np.uint8)
            what += " (as uint8)"
        state[part][key] = torch.from_numpy(np.ascontiguousarray(new))
        what = f"{what} at {part}.{key}"
    elif kind <= 8:
        in_config = rng.random() < 0.7
        what = ("config: " if in_config else "") + edit_json(state["config"] if in_config else state, rng)
    else:
        state["classes"] = [["a"], [], [1, 2], ["a", "a"], "abc", None][int(rng.integers(6))]
        what = f"classes {state['classes']!r}"
    torch.save(state, dst)
    return what


# --------------------------------------------------------------------------- readers and their promises
def _finite(a: Any) -> bool:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return a.dtype.kind in "biu" or (a.dtype.kind == "f" and bool(np.isfinite(a).all()))


def read_nir_case(base: Base, path: Path) -> str | None:
    """Read a NIR file as a bundle reader does and simulate it; a broken promise, or None."""
    from hw_sim.backends import get_backend

    network = load_network(path)
    for layer in network.layers:
        if not all(_finite(getattr(layer, k)) for k in ("weight", "bias", "beta", "threshold", "alpha")):
            return f"layer {layer.name} holds a non-finite value"
    if network.input_size != base.network.input_size:
        return None  # another network; runs on its own inputs
    result = get_backend("fast")(network, base.spikes, mode="fixed", timeout=20.0)
    if not all(set(np.unique(s)) <= {0, 1} for s in result.layer_spikes):
        return "spikes other than 0 and 1"
    return None


def read_netx_case(base: Base, path: Path) -> str | None:
    check_netx(path, base.network, base.scale)
    with h5py.File(path, "r") as f, h5py.File(base.bundle / NETX_FILE, "r") as g:
        ours, theirs = _datasets(f), _datasets(g)
        if sorted(ours) != sorted(theirs) or any(not np.array_equal(f[n][()], g[n][()]) for n in ours):
            return "accepted a netx file that differs from the bundle's"
    return None


def read_host_case(base: Base, path: Path) -> str | None:
    host = read_host(path)
    for name in ("B", "A", "mix", "group_of_line", "fixed_point_scale"):
        value = getattr(host, name)
        if value is not None and not _finite(value):
            return f"host {name} is not finite"
    for key, value in host.head.items():
        if value.dtype != torch.float32 or not _finite(value):
            return f"head {key} is {value.dtype} or not finite"
    if host.B.dtype != HOST_DTYPES["prompt.B"] or host.A.dtype != HOST_DTYPES["prompt.A"]:
        return "factors of another dtype"
    if not 1 <= host.encoding.time_steps <= 10_000 or not 1 <= host.encoding.size <= 4096:
        return "encoding out of range"
    return None


def read_onnx_case(base: Base, path: Path) -> str | None:
    check_onnx_contract(load_onnx_checked(path), ONNX_SIZE, ONNX_CLASSES, path)
    logits = run_logits(make_session(path, threads=1, spinning=False), base.images)
    if logits.shape != (len(base.images), ONNX_CLASSES) or not np.isfinite(logits).all():
        return f"logits {logits.shape} not finite or of another shape"
    return None


def read_manifest_case(base: Base, path: Path, sealed: bool) -> str | None:
    bundle = open_bundle(path)
    broken = as_console_script(lambda: unnamed_paths(bundle.config))
    if broken:
        return broken
    if not sealed and bundle.manifest != json.loads((base.bundle / MANIFEST_FILE).read_text()):
        return "accepted an edited manifest that was not resealed"
    root = path.resolve()
    for name in bundle.manifest["artifacts"]:
        if root not in (path / name).resolve().parents:
            return f"artifact {name} lies outside the bundle"
    return None


def read_checkpoint_case(base: Base, path: Path) -> str | None:
    state = as_console_script(lambda: read_checkpoint(path))
    broken = unnamed_paths(state["config"])
    if broken:
        return broken
    model = model_from_state(state, source=str(path), backbone=base.backbone)
    for name, value in [*model.prompt.state_dict().items(), *model.head.state_dict().items()]:
        if not _finite(value):
            return f"{name} is not finite"
    size = int(state["config"]["image_size"])
    with torch.no_grad():
        logits = model(torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)))
    if not torch.isfinite(logits).all():
        return "logits not finite"
    return None


MAX_GROWTH_MIB = 1024
"""How much a case may raise the worker's peak memory (a reader that let a file grow to gigabytes breaks it)."""


def run_case(base: Base, fmt: str, index: int, seed: int, scratch: Path) -> tuple[str, str, str]:
    """Make case ``index`` of ``fmt`` in ``scratch`` and read it: ``(outcome, mutation, detail)``."""
    rng = np.random.default_rng([seed, FORMATS.index(fmt), index])
    case = scratch / f"{fmt}-{index}"
    case.mkdir()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        outcome, what, detail = _make_and_read(base, fmt, case, rng)
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) >> 10  # KiB -> MiB
        if outcome == "clean" and grew > MAX_GROWTH_MIB:
            return "wrong success", what, f"the reader's memory grew by {grew} MiB ({detail[:80]})"
        return outcome, what, detail
    except Exception as exc:  # noqa: BLE001 - a bug of the fuzzer itself, reported apart from the readers'
        return "generator error", "?", f"{type(exc).__name__}: {str(exc)[:160]}"
    finally:
        shutil.rmtree(case, ignore_errors=True)


def _make_and_read(base: Base, fmt: str, case: Path, rng: np.random.Generator) -> tuple[str, str, str]:
    if True:
        if fmt == "nir":
            what = mutate_hdf5(base.bundle / NIR_FILE, case / NIR_FILE, rng)
            read = lambda: read_nir_case(base, case / NIR_FILE)  # noqa: E731
        elif fmt == "netx":
            what = mutate_hdf5(base.bundle / NETX_FILE, case / NETX_FILE, rng)
            read = lambda: read_netx_case(base, case / NETX_FILE)  # noqa: E731
        elif fmt == "host":
            what = mutate_host(base.bundle / HOST_FILE, case / HOST_FILE, rng)
            read = lambda: read_host_case(base, case / HOST_FILE)  # noqa: E731
        elif fmt == "onnx":
            what = mutate_onnx(base.onnx, case / "backbone.onnx", rng)
            read = lambda: read_onnx_case(base, case / "backbone.onnx")  # noqa: E731
        elif fmt == "manifest":
            what, sealed = mutate_manifest(base.bundle, case / "bundle", base.manifest, rng)
            read = lambda: read_manifest_case(base, case / "bundle", sealed)  # noqa: E731
        elif fmt == "checkpoint":
            what = mutate_checkpoint(base.checkpoint, case / "model.pt", base.state, rng)
            read = lambda: read_checkpoint_case(base, case / "model.pt")  # noqa: E731
        elif fmt == "resume":
            what = mutate_resume(base.resume_path, case / "last.pt", base.resume, rng)
            read = lambda: read_resume_case(base, case / "last.pt")  # noqa: E731
        elif fmt == "folder":
            what = mutate_folder(base.folder, case / "images", rng)
            read = lambda: read_folder_case(base, case / "images")  # noqa: E731
        else:
            script, argv, what = mutate_argv(base, case / "out", rng)
            read = lambda: read_argv_case(base, script, argv)  # noqa: E731
        try:
            broken = read()
        except LorspError as exc:
            message = str(exc)
            if "\n" in message:
                return "traceback", what, f"a LorspError of {message.count(chr(10)) + 1} lines"
            return "clean", what, "refused: " + message[:160]
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer counts
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            return "traceback", what, f"{type(exc).__name__}: {str(exc)[:120]} ({Path(tb.filename).name}:{tb.lineno})"
        if broken:
            return "wrong success", what, broken
        return "clean", what, "accepted, every promise kept"


def check_base(base: Base, scratch: Path) -> None:
    """Every reader accepts its unmutated file (else a tally of refusals would mean nothing)."""
    bundle = scratch / "base-bundle"
    shutil.copytree(base.bundle, bundle, copy_function=os.link)
    for name, broken in (("nir", read_nir_case(base, base.bundle / NIR_FILE)),
                         ("netx", read_netx_case(base, base.bundle / NETX_FILE)),
                         ("onnx", read_onnx_case(base, base.onnx)),
                         ("host", read_host_case(base, base.bundle / HOST_FILE)),
                         ("manifest", read_manifest_case(base, bundle, False)),
                         ("checkpoint", read_checkpoint_case(base, base.checkpoint)),
                         ("resume", read_resume_case(base, base.resume_path)),
                         ("folder", read_folder_case(base, base.folder)),
                         *((f"argv of {s}", read_argv_case(base, s, base_argv(base, s, scratch / "out")))
                           for s in SCRIPTS)):
        if broken:
            raise RuntimeError(f"the unmutated {name} file breaks a promise: {broken}")
    shutil.rmtree(bundle)


# --------------------------------------------------------------------------- the runner
def _worker(conn, base: Base, seed: int, scratch: Path) -> None:
    torch.set_num_threads(1)
    import warnings

    warnings.simplefilter("ignore")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        fmt, index = job
        conn.send(run_case(base, fmt, index, seed, scratch))


@dataclass
class Tally:
    """Outcomes per format, with the first few cases that were not clean."""

    counts: dict[str, Counter] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    refusals: dict[str, Counter] = field(default_factory=dict)

    def add(self, fmt: str, index: int, outcome: str, what: str, detail: str) -> None:
        self.counts.setdefault(fmt, Counter())[outcome] += 1
        if outcome == "clean":
            self.refusals.setdefault(fmt, Counter())["refused" if detail.startswith("refused") else "accepted"] += 1
        elif len(self.failures) < 200:
            self.failures.append({"format": fmt, "case": index, "outcome": outcome, "mutation": what,
                                  "detail": detail})


def fuzz(base: Base, formats: tuple[str, ...], cases: int, seed: int = 0, case_timeout: float = 30.0,
         progress: Callable[[str, int], None] | None = None) -> Tally:
    """Run ``cases`` mutated files of every format in ``formats`` through their readers; the tally."""
    ctx = mp.get_context("fork")
    tally = Tally()
    scratch = Path(tempfile.mkdtemp(prefix="lorsp-fuzz-"))
    worker = conn = None

    def start():
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child_end, base, seed, scratch), daemon=False)  # readers fork
        proc.start()
        child_end.close()
        return proc, parent_end

    try:
        check_base(base, scratch)
        worker, conn = start()
        for fmt in formats:
            for index in range(cases):
                conn.send((fmt, index))
                if conn.poll(case_timeout):
                    try:
                        outcome, what, detail = conn.recv()
                    except EOFError:
                        outcome, what, detail = "traceback", "?", f"the worker died (exit {worker.exitcode})"
                else:
                    outcome, what, detail = "hang", "?", f"no answer in {case_timeout:g} s"
                if outcome in ("hang",) or not worker.is_alive() or detail.startswith("the worker died"):
                    worker.kill()
                    worker.join()
                    shutil.rmtree(scratch / f"{fmt}-{index}", ignore_errors=True)
                    worker, conn = start()
                tally.add(fmt, index, outcome, what, detail)
                if progress is not None:
                    progress(fmt, index)
        conn.send(None)
        worker.join(10)
    finally:
        if worker is not None and worker.is_alive():
            worker.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    return tally


def tally_table(tally: Tally) -> str:
    """The tally as a Markdown table: a row per format, a column per outcome."""
    lines = ["| format | files | " + " | ".join(OUTCOMES) + " | of the clean: refused / accepted |",
             "|---|---:|" + "---:|" * len(OUTCOMES) + "---|"]
    for fmt, counts in tally.counts.items():
        r = tally.refusals.get(fmt, Counter())
        lines.append(f"| {fmt} | {sum(counts.values())} | " + " | ".join(str(counts[o]) for o in OUTCOMES)
                     + f" | {r['refused']} / {r['accepted']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.output import fail, run_record, write_tables
    from lorsp.plumbing.cli_options import OptionParser, count, number, seed as seed_type

    p = OptionParser(prog="benchmarks/fuzz.py", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=count(), default=1000, help="files per format")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    p.add_argument("--seed", type=seed_type(), default=0)
    p.add_argument("--case-timeout", type=number(0.0, 3600.0, above=True), default=30.0,
                   help="seconds one case may take before it counts as a hang")
    p.add_argument("--checkpoint", type=Path, default=None, help="a LoRSP model.pt (default: train a tiny one)")
    p.add_argument("--bundle", type=Path, default=None, help="its --target loihi bundle (default: export one)")
    p.add_argument("--out", type=Path, required=True, help="folder for fuzz.json, fuzz.md and the base files")
    try:
        args = p.parse_args(argv)
    except LorspError as exc:
        fail(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    base = make_base(args.out, args.checkpoint, args.bundle)
    start = time.perf_counter()
    tally = fuzz(base, tuple(args.formats), args.cases, args.seed, args.case_timeout,
                 progress=lambda f, i: print(f"\r{f} {i + 1}/{args.cases}", end="", file=sys.stderr, flush=True))
    seconds = time.perf_counter() - start
    print(file=sys.stderr)
    table = tally_table(tally)
    text = (f"# Fuzzing the readers ({args.cases} files per format, seed {args.seed})\n\n{table}\n\n"
            f"{seconds:.0f} s. Not clean:\n\n" + ("\n".join(f"- {f['format']} #{f['case']} {f['outcome']}: "
                                                         f"{f['mutation']} -> {f['detail']}"
                                                         for f in tally.failures) or "none") + "\n")
    result = run_record(args, seconds=seconds, counts={f: dict(c) for f, c in tally.counts.items()},
                        refusals={f: dict(c) for f, c in tally.refusals.items()}, failures=tally.failures)
    result["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in result["settings"].items()}
    write_tables(args.out, "fuzz", result, text)
    return 0 if all(c["clean"] == sum(c.values()) for c in tally.counts.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
