"""The hostile files of issue 28, made on demand: for the fuzzers and for the tests that pin each class.

* HDF5 objects that declare more than the file holds or point elsewhere (:func:`hostile_hdf5_object`);
* ``torch.save`` files whose storages declare gigabytes the file does not hold, in the zip and the legacy
  format, compressed zip records (:func:`declare_numel`, :func:`zip_with`, :func:`legacy_bomb`);
* lists and dicts nested 100,000 deep, pickled without recursion (:func:`save_nested`);
* configs that store paths the command did not name (:func:`stored_path_change`), and names no file system
  holds (:func:`long_name`).
"""
from __future__ import annotations

import copy
import io
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import torch

from lorsp.plumbing.nesting import too_deep

HUGE_NUMEL = 900_000_000
"""Declared elements of one storage: 3.6 GB of float32."""
DEEP = 100_000
"""Levels of the deeply nested values."""


def hostile_hdf5_object(f: h5py.File, name: str, src: Path, rng: np.random.Generator) -> str:
    """Replace or join dataset ``name`` of ``f`` with an object a reader must refuse before reading a value: a
    chunked dataset declaring terabytes, an object or region reference, a reference attribute, a virtual dataset
    over ``src``. What was done."""
    kind = int(rng.integers(5))
    parent = name.rsplit("/", 1)[0] if "/" in name else "/"
    if kind == 0:
        shape = [(10 ** 6, 10 ** 6), (1 << 40,), (1 << 20, 1 << 20, 4)][int(rng.integers(3))]
        dtype = f[name].dtype if f[name].dtype.kind in "biuf" else np.dtype("<f4")
        del f[name]
        f.create_dataset(name, shape=shape, dtype=dtype, chunks=tuple(min(64, n) for n in shape))
        return f"{name} declares shape {shape}"
    if kind == 1:
        f[parent].create_dataset(f"ref_{int(rng.integers(100))}", data=np.array([f[name].ref], dtype=h5py.ref_dtype))
        return f"object reference beside {name}"
    if kind == 2:
        target = f[name]
        region = target.regionref[0:1] if target.shape else target.regionref[()]
        f[parent].create_dataset(f"rref_{int(rng.integers(100))}", data=np.array([region],
                                                                                  dtype=h5py.regionref_dtype))
        return f"region reference beside {name}"
    if kind == 3:
        f[parent].attrs.create("points", np.array([f[name].ref], dtype=h5py.ref_dtype))
        return f"reference attribute on {parent}"
    shape, dtype = f[name].shape or (1,), f[name].dtype if f[name].dtype.kind in "biuf" else np.dtype("<f4")
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
    layout[...] = h5py.VirtualSource(str(src), name, shape=shape, dtype=dtype)
    del f[name]
    f.create_virtual_dataset(name, layout)
    return f"virtual dataset at {name}"


# --------------------------------------------------------------------------- torch files that grow on load
def declare_numel(pickle_bytes: bytes, numel: int = HUGE_NUMEL) -> bytes:
    """``pickle_bytes`` (a torch pickle) with the element count of its first storage (the integer after the first
    ``'cpu'`` location) replaced by ``numel``."""
    ops = list(pickletools.genops(pickle_bytes))
    at = next(k for k, (op, arg, _) in enumerate(ops) if op.name in ("BINUNICODE", "SHORT_BINUNICODE") and arg == "cpu")
    op, _, pos = next(o for o in ops[at + 1:] if o[0].name.startswith("BININT"))
    end = pos + 1 + {"BININT1": 1, "BININT2": 2, "BININT": 4}[op.name]
    return pickle_bytes[:pos] + b"J" + numel.to_bytes(4, "little") + pickle_bytes[end:]


def zip_with(source: bytes, edit_pickle: Callable[[bytes], bytes] | None = None,
             compress: int = zipfile.ZIP_STORED) -> bytes:
    """The ``torch.save`` zip ``source`` rewritten: its data.pkl through ``edit_pickle``, its records compressed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as zin, zipfile.ZipFile(out, "w", compress) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if edit_pickle and info.filename.endswith("/data.pkl"):
                data = edit_pickle(data)
            zout.writestr(info.filename, data)
    return out.getvalue()


def legacy_bomb(numel: int = HUGE_NUMEL) -> bytes:
    """A legacy-format (``_use_new_zipfile_serialization=False``) file of a few hundred bytes whose one storage
    declares ``numel`` float32 values."""
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(1)}, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    f = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol, system info
        list(pickletools.genops(f))
    start = f.tell()
    list(pickletools.genops(f))
    return data[:start] + declare_numel(data[start:f.tell()], numel) + data[f.tell():]


def nested(depth: int = DEEP) -> Any:
    """``{"k": {"k": ... 1}}``, ``depth`` levels."""
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def save_nested(state: Any, path: Path) -> Path:
    """``torch.save(state)`` where ``state`` holds values nested up to :data:`DEEP` levels.

    Pickling recurses, and from Python 3.12 on the C stack's limit stops it whatever the recursion limit, so an
    attacker's file is made the way an attacker would make it: each deep part of ``state`` (a list or dict with no
    tensor in it, nested deeper than :data:`SHALLOW`) is saved as a marker string, and the marker's opcodes in the
    file's data.pkl are then replaced by opcodes that build the deep value without recursion (:func:`flat_pickle`).
    """
    deep: dict[str, Any] = {}
    buffer = io.BytesIO()
    torch.save(_with_markers(state, deep), buffer)

    def patch(pkl: bytes) -> bytes:
        for marker, value in deep.items():
            opcodes = flat_pickle(marker)
            assert pkl.count(opcodes) == 1, marker
            pkl = pkl.replace(opcodes, flat_pickle(value))
        return pkl

    path.write_bytes(zip_with(buffer.getvalue(), patch))
    return path


SHALLOW = 64
"""Nesting that torch.save pickles as it is; deeper parts go through :func:`flat_pickle`."""


def flat_pickle(value: Any) -> bytes:
    """Protocol-2 opcodes (no header, no STOP, no memo) that push ``value``: lists and dicts by an explicit stack,
    any other value as the pickler writes it."""
    out = bytearray()
    tasks: list[tuple[bool, Any]] = [(False, value)]
    while tasks:
        raw, item = tasks.pop()
        if raw:
            out += item
        elif isinstance(item, dict):
            out += pickle.EMPTY_DICT + pickle.MARK
            tasks.append((True, pickle.SETITEMS))
            for key, child in reversed(list(item.items())):
                tasks += [(False, child), (False, key)]
        elif isinstance(item, list):
            out += pickle.EMPTY_LIST + pickle.MARK
            tasks.append((True, pickle.APPENDS))
            tasks += [(False, child) for child in reversed(item)]
        else:
            leaf = io.BytesIO()
            pickler = pickle.Pickler(leaf, protocol=2)
            pickler.fast = True  # no memo: the opcodes stand anywhere in another pickle
            pickler.dump(item)
            out += leaf.getvalue()[2:-1]
    return bytes(out)


def _holds_tensor(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _with_markers(state: Any, deep: dict[str, Any]) -> Any:
    """``state`` copied down to its deep parts, each replaced by a marker string recorded in ``deep``."""
    def marked(value: Any) -> Any:
        if not isinstance(value, (dict, list)) or too_deep(value, SHALLOW) is None:
            return value
        if not _holds_tensor(value):
            marker = f"lorsp-deep-value-{len(deep)}"
            deep[marker] = value
            return marker
        if isinstance(value, dict):
            return {key: marked(child) for key, child in value.items()}
        return [marked(child) for child in value]
    return marked(state)


def hostile_torch_file(src: Path, dst: Path, base_state: dict, rng: np.random.Generator, kind: int) -> str:
    """Issue 28's torch files, from ``src`` (a checkpoint or resume file) and its loaded ``base_state``: storages
    declaring more than the file holds, compressed records, a tensor viewing one value as millions (``kind`` 0); a value nested up to :data:`DEEP`
    levels in a random dict of the state (1); a config storing paths (2). What was done."""
    if kind == 0 and rng.random() < 0.25:
        state = copy.deepcopy(base_state)
        holders = [(w, d, k) for w, d in _dicts(state) for k, v in d.items() if isinstance(v, torch.Tensor)]
        where, holder, key = holders[int(rng.integers(len(holders)))]
        side = int(rng.choice([1 << 10, 100_000, 1 << 20]))
        holder[key] = torch.zeros(1, dtype=holder[key].dtype).expand(side, side)
        torch.save(state, dst)
        return f"{where}/{key} a stride-0 view of {side} x {side}"
    if kind == 0:
        choice = int(rng.integers(3))
        numel = int(rng.integers(1 << 20, 1 << 31))
        data = [lambda: zip_with(src.read_bytes(), lambda p: declare_numel(p, numel)), lambda: legacy_bomb(numel),
                lambda: zip_with(src.read_bytes(), compress=zipfile.ZIP_DEFLATED)][choice]()
        dst.write_bytes(data)
        return [f"a storage declaring {numel} values", f"a legacy file declaring {numel} values",
                "compressed zip records"][choice]
    state = copy.deepcopy(base_state)
    if kind == 1:
        depth = int(rng.choice([17, 1000, DEEP]))
        holders = _dicts(state)
        where, holder = holders[int(rng.integers(len(holders)))]
        keys = [k for k in holder if isinstance(k, str)]
        key = keys[int(rng.integers(len(keys)))] if keys and rng.random() < 0.5 else "deep"
        holder[key] = nested(depth)
        save_nested(state, dst)
        return f"{where or 'top'}/{key} nested {depth} deep"
    changes, what = stored_path_change(rng)
    state["config"].update(changes)
    torch.save(state, dst)
    return "config stores " + what


def _dicts(value: Any, where: str = "", depth: int = 0) -> list[tuple[str, dict]]:
    """Every dict in ``value`` down to depth 4, with where it lies."""
    if not isinstance(value, dict) or depth > 4:
        return []
    found = [(where, value)]
    for key, child in value.items():
        found += _dicts(child, f"{where}/{key}", depth + 1)
    return found


# --------------------------------------------------------------------------- stored paths and long names
def stored_path_change(rng: np.random.Generator) -> tuple[dict[str, Any], str]:
    """Config entries that store a path the command did not name, and what they are."""
    kind = int(rng.integers(4))
    if kind == 0:
        return {"weights": "/etc/shadow"}, "weights /etc/shadow"
    if kind == 1:
        return {"dataset": "imagefolder:/root"}, "dataset imagefolder:/root"
    if kind == 2:
        return {"dataset": "cifar10", "data_root": "/root/private"}, "cifar10 under data_root /root/private"
    return {"weights": "../../etc/passwd", "data_root": "/proc/self"}, "weights and data_root both stored"


def long_name(rng: np.random.Generator) -> str:
    """A relative path no file system holds: a part over 255 bytes, a path over 1024, or not UTF-8."""
    kind = int(rng.integers(3))
    if kind == 0:
        return "a" * int(rng.integers(256, 4096))
    if kind == 1:
        return "/".join(["d" * 200] * int(rng.integers(6, 40)))
    return "caf\udce9.bin"
