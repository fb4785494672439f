"""HDF5 files (NIR, netx) written safely, and opened without following anything out of the file.

Writing: HDF5's C library can crash the process when a write fails half-way (a full disk, a
file-size limit), so a file is built in memory and its bytes written by Python
(:func:`lorsp.plumbing.fileio.atomic_write`): a failed write is an ``OSError`` and no file.

Reading: an HDF5 file can point outside itself, through external links (``h5py.ExternalLink``,
a group or dataset that lives in another file), soft links and datasets with external storage
(their bytes read from any named file, e.g. ``/etc/passwd``), and object or region references
(pointers to other objects, which no lorsp file holds). A bundle's integrity rests on the
sha256 of its own files, so :func:`check_self_contained` refuses all of them before a reader
looks at a value. It also refuses a dataset or attribute whose declared size is beyond
:data:`MAX_DATASET_BYTES` (or all of them beyond :data:`MAX_TOTAL_BYTES`): a 40 KB file can
declare a chunked 10^6 x 10^6 weight that reading would allocate (3.6 TiB), so sizes are checked
from the header, before any value is read.
"""
from __future__ import annotations

import io
import multiprocessing as mp
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from lorsp.plumbing.deadline import run_with_deadline
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import atomic_write


READ_TIMEOUT_S = 20.0
"""The longest an HDF5 read may take (the files lorsp reads are kilobytes to a few megabytes)."""
MAX_DATASET_BYTES = 1 << 27
"""The largest dataset or attribute read, in bytes as declared (128 MiB: 16M float64 values, the NIR reader's
largest node parameter)."""
MAX_TOTAL_BYTES = 1 << 28
"""The most bytes all datasets and attributes of one file may declare together (256 MiB)."""


def write_hdf5(path: str | Path, write: Callable[[io.BytesIO], None]) -> Path:
    """Call ``write(buffer)`` (which opens ``h5py.File(buffer, "w")``, or ``nir.write(buffer, graph)``) and
    write the bytes to ``path`` atomically."""
    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def read_bounded(read: Callable[..., Any], path: Path, what: str, timeout: float | None = None) -> Any:
    """``read(path)`` in a child process (:func:`lorsp.plumbing.deadline.run_with_deadline`); its result.

    A corrupt HDF5 file can send the C library into an endless loop that no signal handler
    interrupts (a zeroed global heap: every variable-length string read spins); the child is
    stopped after ``timeout`` s (default :data:`READ_TIMEOUT_S`) and the read is one LorspError line.
    In a daemonic process (a ``multiprocessing.Pool`` worker), which may not start children, the
    read runs in place, without the limit.
    """
    timeout = READ_TIMEOUT_S if timeout is None else timeout
    if mp.current_process().daemon:  # multiprocessing lets a daemonic process (a Pool worker) have no children
        return read(path)
    return run_with_deadline(_read_for_child, (read, path), timeout=timeout, what=f"reading {path}",
                             late=f"reading {path} took more than {timeout:g} s and was stopped: a corrupt "
                                  f"{what}")


def _read_for_child(read: Callable[..., Any], path: Path, progress: Callable[[Any], None]) -> Any:
    return read(path)


def check_self_contained(path: str | Path, what: str) -> None:
    """Refuse an HDF5 file with external or soft links, a dataset stored outside the file, references, or
    declared sizes beyond the limits above.

    LorspError (one line) naming the first such object; also when ``path`` is not HDF5. Only the file's
    headers are read (names, links, dtypes, shapes), never a value.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            problem = _SafetyWalk().first_problem(f)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise LorspError(f"{path} is not a readable {what} (truncated or another format): "
                         f"{type(exc).__name__}: {first}") from None
    if problem:
        raise LorspError(f"{path}: {problem}; a {what} must hold all its data itself, within "
                         f"{MAX_DATASET_BYTES >> 20} MiB a dataset (refused, nothing read)")


def _holds_reference(dtype: np.dtype) -> bool:
    """True when ``dtype`` (or a field or element of it) is an HDF5 object or region reference."""
    if h5py.check_dtype(ref=dtype) is not None:
        return True
    if dtype.fields:
        return any(_holds_reference(field[0]) for field in dtype.fields.values())
    base = h5py.check_dtype(vlen=dtype)
    if isinstance(base, np.dtype) and _holds_reference(base):
        return True
    return dtype.subdtype is not None and _holds_reference(dtype.subdtype[0])


class _SafetyWalk:
    """One walk over a file's groups that sums the bytes its datasets and attributes declare."""

    def __init__(self) -> None:
        self.total = 0

    def first_problem(self, group: h5py.Group, prefix: str = "", depth: int = 0) -> str | None:
        """A description of the first link, outside storage, reference or oversized object; None when there is none."""
        if depth > 64:
            return f"groups nested deeper than 64 at {prefix or '/'}"
        problem = self._attributes(group, prefix or "/")
        if problem:
            return problem
        for name in group.keys():
            full = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                return f"{full} is an external link to {link.filename}:{link.path}"
            if isinstance(link, h5py.SoftLink):
                return f"{full} is a soft link to {link.path}"
            obj = group.get(name)
            if isinstance(obj, h5py.Dataset):
                problem = self._dataset(obj, full) or self._attributes(obj, full)
            elif isinstance(obj, h5py.Group):
                problem = self.first_problem(obj, full, depth + 1)
            if problem:
                return problem
        return None

    def _dataset(self, obj: h5py.Dataset, full: str) -> str | None:
        if obj.external:
            return f"dataset {full} is stored in external file(s) {', '.join(str(e[0]) for e in obj.external)}"
        if obj.is_virtual:
            return f"dataset {full} is a virtual dataset (its data lives in other files)"
        return self._value(f"dataset {full}", obj.dtype, obj.shape)

    def _attributes(self, obj: h5py.HLObject, full: str) -> str | None:
        for key in obj.attrs.keys():
            attr = obj.attrs.get_id(key)
            problem = self._value(f"attribute {key[:60]!r} of {full}", attr.dtype, attr.shape)
            if problem:
                return problem
        return None

    def _value(self, what: str, dtype: np.dtype, shape: tuple[int, ...] | None) -> str | None:
        if _holds_reference(dtype):
            return f"{what} holds HDF5 references (pointers to other objects)"
        size = float(np.prod([float(n) for n in shape or ()])) * max(dtype.itemsize, 1)
        self.total += size
        if size > MAX_DATASET_BYTES:
            return f"{what} declares shape {tuple(shape or ())} of {dtype}, {size / 2 ** 20:.3g} MiB"
        if self.total > MAX_TOTAL_BYTES:
            return f"its datasets and attributes declare more than {MAX_TOTAL_BYTES >> 20} MiB in all (at {what})"
        return None
