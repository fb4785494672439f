"""Atomic outputs: files appear complete or not at all.

A file is written to a temporary name beside its target and renamed (rename is
atomic on POSIX). A run directory is claimed, staged and published by
:mod:`lorsp.plumbing.publish`; an existing ``DIR`` is only replaced with ``force``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.nesting import describe, too_deep
from lorsp.plumbing.torch_files import check_torch_file

MAX_NESTING = 16
"""The deepest nesting of lists and dicts a checkpoint or resume file may hold (they hold 4)."""


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def open_regular(path: str | Path, what: str = "file") -> BinaryIO:
    """``path`` opened for reading in binary, refused in one line unless it is a regular file.

    Opened without blocking and checked on the open descriptor: a FIFO or a device among a user's
    files would block ``open()`` forever or never end; this refuses it at once instead.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise LorspError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LorspError(f"{what} {path} is not a regular file (a FIFO, device or socket): refusing to read it")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: an object, refused (ValueError) when a key appears twice, where JSON
    readers disagree on which value counts."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key[:60]!r} appears twice in one object")
        seen[key] = value
    return seen


MAX_SAFETENSORS_HEADER = 100 << 20
"""The largest safetensors header read (the format's own readers refuse more)."""


def check_safetensors_header(path: str | Path) -> None:
    """Refuse (one line) a safetensors file whose JSON header is unreadable or holds a key twice: readers of the
    format disagree on which of two equal keys counts, so such a file means different tensors to different tools."""
    with open_regular(path, "safetensors file") as f:
        size = int.from_bytes(f.read(8), "little")
        if not 2 <= size <= MAX_SAFETENSORS_HEADER:
            raise LorspError(f"{path} is not a safetensors file (header size {size})")
        header = f.read(size)
    try:
        json.loads(header.decode("utf-8"), object_pairs_hook=unique_keys)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LorspError(f"{path}: its safetensors header is not valid: {str(exc)[:120]}") from None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_torch_safely(path: str | Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain types only, no code ever runs.

    A missing, truncated or corrupt file, one that carries pickled code, one whose storages declare more
    bytes than it holds (:func:`lorsp.plumbing.torch_files.check_torch_file`, before anything is
    allocated), or one nested deeper than
    :data:`MAX_NESTING` (:mod:`lorsp.plumbing.nesting`) is one :class:`LorspError` naming ``what``
    (e.g. "lorsp checkpoint").
    """
    path = Path(path)
    if not path.is_file():
        raise LorspError(f"{what} not found: {path}")
    check_torch_file(path, what)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise LorspError(f"{path} is not a readable {what} (truncated, corrupt or carrying code, which is "
                         f"never run): {type(exc).__name__}: {first}") from None
    where = too_deep(state, MAX_NESTING)
    if where is not None:
        raise LorspError(f"{path}: {describe(where)} nests lists or dicts deeper than {MAX_NESTING} levels: "
                         f"not a {what}")
    return state


def write_json(path: str | Path, obj: Any) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")

    return atomic_write(path, write)


def save_torch(path: str | Path, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path``, atomically. torch reports a failed write (a full disk) as a RuntimeError;
    it is raised as the OSError it is, which the console scripts print as one line."""

    def write(tmp: Path) -> None:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:
            raise OSError(errno.EIO, f"torch.save failed: {str(exc).strip().splitlines()[-1][:160]}", str(path)) \
                from None

    return atomic_write(path, write)


def staging_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")
