"""HDF5 files (NIR, netx) written safely, and opened without following anything out of the file.

Writing: HDF5's C library can crash the process when a write fails half-way (a full disk, a
file-size limit), so a file is built in memory and its bytes written by Python
(:func:`lorsp.plumbing.fileio.atomic_write`): a failed write is an ``OSError`` and no file.

Reading: an HDF5 file can point outside itself, through external links (``h5py.ExternalLink``,
a group or dataset that lives in another file), soft links and datasets with external storage
(their bytes read from any named file, e.g. ``/etc/passwd``). A bundle's integrity rests on the
sha256 of its own files, so :func:`check_self_contained` refuses all of them before a reader
looks at a value.
"""
from __future__ import annotations

import io
import multiprocessing as mp
from pathlib import Path
from typing import Any, Callable

import h5py

from lorsp.plumbing.deadline import run_with_deadline
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import atomic_write


READ_TIMEOUT_S = 20.0
"""The longest an HDF5 read may take (the files lorsp reads are kilobytes to a few megabytes)."""


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
    """Refuse an HDF5 file with external or soft links, or a dataset stored outside the file.

    LorspError (one line) naming the first such object; also when ``path`` is not HDF5.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            problem = _first_outside_reference(f)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise LorspError(f"{path} is not a readable {what} (truncated or another format): "
                         f"{type(exc).__name__}: {first}") from None
    if problem:
        raise LorspError(f"{path}: {problem}; a {what} must hold all its data itself (refused, nothing read)")


def _first_outside_reference(group: h5py.Group, prefix: str = "", depth: int = 0) -> str | None:
    if depth > 64:
        return f"groups nested deeper than 64 at {prefix or '/'}"
    for name in group.keys():
        full = f"{prefix}/{name}"
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            return f"{full} is an external link to {link.filename}:{link.path}"
        if isinstance(link, h5py.SoftLink):
            return f"{full} is a soft link to {link.path}"
        obj = group.get(name)
        if isinstance(obj, h5py.Dataset):
            if obj.external:
                return f"dataset {full} is stored in external file(s) {', '.join(str(e[0]) for e in obj.external)}"
            if obj.is_virtual:
                return f"dataset {full} is a virtual dataset (its data lives in other files)"
        elif isinstance(obj, h5py.Group):
            found = _first_outside_reference(obj, full, depth + 1)
            if found:
                return found
    return None
