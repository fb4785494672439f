"""A ``torch.save`` file checked before ``torch.load`` reads it: it may not grow beyond what it holds.

``torch.load(weights_only=True)`` runs no code, but it allocates each storage at the size the
pickle declares before it reads the storage's bytes: a 140-byte file declaring six 600 MB
storages grew to 3.6 GB before torch refused it. :func:`check_torch_file` replays the file's
pickle with torch's own weights-only unpickler, each storage standing in on the ``meta`` device
(no memory), and refuses, in one line naming the storage, a file

* whose storages declare more bytes than the file holds for them (zip format: a record of
  at least that size, stored uncompressed; torch's legacy format: the bytes after the pickles);
* with a tensor that views more elements than its storage holds (a stride-0 view of one float
  saved as 100,000 x 100,000 asks for 40 GB at its first copy), tensors that add up to more than
  twice the file, or a sparse tensor;
* in a format that cannot be bounded so (compressed zip records, a zip naming a record twice,
  the tar format of torch < 0.4), or whose pickle is over :data:`MAX_PICKLE_BYTES`.

What torch.load then allocates is at most the file's size and a bounded pickle.
"""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch._weights_only_unpickler import Unpickler

from lorsp.plumbing.errors import LorspError

MAX_PICKLE_BYTES = 16 << 20
"""The largest pickle replayed (a checkpoint's is a few kilobytes; a 16 MiB pickle builds at most ~10^7 objects)."""


def check_torch_file(path: str | Path, what: str) -> None:
    """Refuse (LorspError, one line) a ``torch.save`` file whose declared storages exceed what it holds, or that
    cannot be bounded (see the module docstring); a file that is no torch file is left to ``torch.load``."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            _check_zip(path, what)
        elif tarfile.is_tarfile(path):
            raise LorspError(f"{path} is a {what} in torch's tar format (torch < 0.4), which is not read: save it "
                             f"again with torch.save")
        else:
            _check_legacy(path, what)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise LorspError(f"{path} is not a readable {what} (truncated or corrupt): {type(exc).__name__}: "
                         f"{first}") from None


def _check_zip(path: Path, what: str) -> None:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if not infos or len(set(names)) != len(names):
            raise LorspError(f"{path}: a {what} whose zip archive is empty or names a record twice")
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                raise LorspError(f"{path}: record {info.filename[:80]!r} of the {what} is compressed; torch.save "
                                 f"writes none, and a compressed record can expand without bound")
        prefix = names[0].split("/")[0]  # torch reads the archive's records under its first record's folder
        sizes = {info.filename: info.file_size for info in infos}
        pickle_name = f"{prefix}/data.pkl"
        if sizes.get(pickle_name, 0) > MAX_PICKLE_BYTES:
            raise LorspError(f"{path}: the {what}'s pickle is over {MAX_PICKLE_BYTES >> 20} MiB")
        if pickle_name not in sizes:
            raise LorspError(f"{path} is not a readable {what}: its zip archive holds no {pickle_name}")
        data = archive.read(pickle_name)

    def held(key: str) -> int:
        return sizes.get(f"{prefix}/data/{key}", 0)

    _replay(io.BytesIO(data), held, path, what)


def _check_legacy(path: Path, what: str) -> None:
    """torch's legacy format: magic number, protocol, system info and the object, each a pickle, then the storage
    keys and the storages' bytes."""
    with path.open("rb") as f:
        try:
            magic = Unpickler(f, encoding="utf-8").load()
            if magic != torch.serialization.MAGIC_NUMBER:
                return  # not a torch file: torch.load says what it is
            for _ in range(2):  # protocol version, system info
                Unpickler(f, encoding="utf-8").load()
        except Exception:  # noqa: BLE001 - not a legacy torch file: torch.load says what it is
            return
        if f.tell() > MAX_PICKLE_BYTES:
            raise LorspError(f"{path}: the {what}'s pickle is over {MAX_PICKLE_BYTES >> 20} MiB")
        remaining = path.stat().st_size - f.tell()
        declared = _replay(f, lambda key: remaining, path, what)
    if sum(declared.values()) > remaining:
        raise LorspError(f"{path}: its storages declare {sum(declared.values())} bytes in all, but the {what} holds "
                         f"{remaining} after its pickles: refused before reading")


def _replay(f: BinaryIO, held: Any, path: Path, what: str) -> dict[str, int]:
    """Unpickle ``f`` with storages on the meta device; ``{storage key: declared bytes}``. ``held(key)`` is how many
    bytes the file holds for a storage."""
    declared: dict[str, int] = {}

    def persistent_load(pid: Any) -> torch.storage.TypedStorage:
        if not isinstance(pid, tuple) or len(pid) not in (5, 6):
            raise LorspError(f"{path}: a storage of the {what} is described by {type(pid).__name__} {str(pid)[:60]}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        dtype = torch.uint8 if storage_type is torch.UntypedStorage else getattr(storage_type, "dtype", None)
        if not isinstance(dtype, torch.dtype) or not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise LorspError(f"{path}: a storage of the {what} is not (type, key, location, size): {str(pid)[:80]}")
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        if nbytes > held(key):
            raise LorspError(f"{path}: storage {key[:40]!r} of the {what} declares {nbytes} bytes, but the file holds "
                             f"{held(key)} for it: refused before reading")
        declared[key] = max(declared.get(key, 0), nbytes)
        storage = torch.UntypedStorage(nbytes, device="meta")
        return torch.storage.TypedStorage(wrap_storage=storage, dtype=dtype, _internal=True)

    unpickler = Unpickler(f, encoding="utf-8")
    unpickler.persistent_load = persistent_load
    try:
        _check_tensors(unpickler.load(), path, what)
    except LorspError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a hostile pickle is one line
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise LorspError(f"{path} is not a readable {what} (truncated, corrupt or carrying code, which is never run): "
                         f"{type(exc).__name__}: {first}") from None
    return declared


def _check_tensors(value: Any, path: Path, what: str) -> None:
    """Refuse a tensor that is not a plain strided one (sparse: dense at any use), or that views more elements than
    its storage holds (a stride-0 view of one float saved as 100,000 x 100,000: 40 GB at its first copy), or tensors
    together more than twice the file's bytes (many views of one storage). Walked without recursion, each object
    once (memoised objects can repeat without bound)."""
    total, limit = 0, 2 * path.stat().st_size + (1 << 20)
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            if item.layout != torch.strided:
                raise LorspError(f"{path}: the {what} holds a {item.layout} tensor; lorsp writes dense ones only")
            nbytes = item.numel() * item.element_size()
            if nbytes > item.untyped_storage().nbytes():
                raise LorspError(f"{path}: a tensor of the {what} of shape {tuple(item.shape)} views "
                                 f"{item.untyped_storage().nbytes()} stored bytes as {nbytes}: refused before reading")
            total += nbytes
            if total > limit:
                raise LorspError(f"{path}: the {what}'s tensors add up to more than {limit} bytes, twice the file")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
