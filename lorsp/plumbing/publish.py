"""Claiming an output directory before any work, and publishing it whole: never raced, never half-written.

    with claim_output(out, force, sources=[checkpoint]) as claim:   # checked and locked, before any work
        ...                                                         # the expensive part
        with claim.staged() as stage:                               # a directory only this process writes
            write_files(stage)
    # published: OUT appeared complete, in one rename, or not at all

:func:`claim_output`

* refuses an ``OUT`` that exists, unless ``force``; one that is, holds or lies inside an input
  (``sources``: ``--force`` onto the source would delete it), even with ``force``;
* checks the path can be written before any work: a name the file system can hold (UTF-8,
  not too long), a parent that is a directory and writable (``/proc`` is not), some free space;
* takes an exclusive lock (``flock``) on ``.OUT.lock`` beside ``OUT``: a second run for the same
  ``OUT`` is refused at once, in one line naming the holder's pid, while the first works.

:meth:`OutputClaim.staged` yields a fresh staging directory with a per-process name
(``.OUT.<random>.partial``) and publishes it (:meth:`OutputClaim.publish`) with
``renameat2(RENAME_NOREPLACE)``: a directory that appeared meanwhile is never replaced, and
with ``force`` the old ``OUT`` is moved aside first, then deleted. Any error, a full disk
included, removes the staging directory and what the claim created (parent folders, the lock);
an ``OSError`` while writing becomes one :class:`~lorsp.plumbing.errors.LorspError` line.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from lorsp.plumbing.errors import LorspError

MIN_FREE_BYTES = 16 << 20
"""Free space an output needs at least, when the caller does not know its size (16 MiB)."""
NAME_MARGIN = len(".") + len(".12345678.partial")
"""What the staging name adds to ``OUT``'s own name; the file system must hold that too."""
RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _display(path: Path) -> str:
    """``path`` for a message, with bytes that are not UTF-8 escaped (so the message can be printed)."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` atomically, failing with ``FileExistsError`` when ``dst`` exists.

    Linux ``renameat2(RENAME_NOREPLACE)``; where the C library lacks it, a check before
    ``os.rename`` (the lock of :func:`claim_output` keeps lorsp's own runs apart there).
    """
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(str(src)), _AT_FDCWD, os.fsencode(str(dst)), RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: a file system without the flag
            raise OSError(code, os.strerror(code), str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def _overlaps(out: Path, source: Path, inside_ok: bool) -> str | None:
    """Why writing ``out`` would harm ``source`` (both resolved), or None."""
    if out == source:
        return "is"
    if out in source.parents:
        return "holds"
    if not inside_ok and source in out.parents:
        return "lies inside"
    return None


def refuse_overlaps(out: Path, resolved: Path, sources: Iterable[str | Path | None], inside_ok: bool) -> None:
    """LorspError (one line) when output ``out`` (``resolved``) is, holds, or (unless ``inside_ok``) lies inside
    one of ``sources`` (None and empty entries skipped)."""
    for source in sources:
        if source is None or str(source) == "":
            continue
        how = _overlaps(resolved, Path(source).resolve(), inside_ok)
        if how:
            raise LorspError(f"output {_display(out)} {how} the input {_display(Path(source))}: writing it would "
                             f"destroy the input (even --force refuses this); choose another output")


def check_output_path(out: Path, *, force: bool, sources: Iterable[str | Path | None] = (),
                      inside_ok: bool = False) -> Path:
    """The checks of :func:`claim_output` that need no lock; returns ``out`` resolved.

    ``sources``: input files or directories (None entries are skipped); ``inside_ok`` lets
    ``out`` lie inside a directory source (not be it, nor hold it).
    """
    name = _display(out)
    try:
        str(out).encode("utf-8")
    except UnicodeEncodeError:
        raise LorspError(f"output {name} is not a UTF-8 name: choose one that is") from None
    if not out.name or out.name in (".", ".."):
        raise LorspError(f"output {name} names no directory to create")
    resolved = Path(os.path.abspath(out))
    resolved = resolved.parent.resolve() / resolved.name  # the parent's links followed, not OUT's own
    refuse_overlaps(out, resolved, sources, inside_ok)
    if os.path.lexists(resolved) and not force:
        raise LorspError(f"output {name} already exists: pass --force to overwrite it")
    try:
        limit = os.pathconf(_existing_ancestor(resolved), "PC_NAME_MAX")
    except OSError:
        limit = 255
    try:
        path_limit = os.pathconf(_existing_ancestor(resolved), "PC_PATH_MAX")
    except OSError:
        path_limit = 4096
    if len(os.fsencode(str(resolved))) + NAME_MARGIN + len("/x" * 8) > path_limit:
        raise LorspError(f"output path {name[:40]}... is too long: the file system holds paths of at most "
                         f"{path_limit} bytes")
    if len(os.fsencode(out.name)) + NAME_MARGIN > limit:
        raise LorspError(f"output name {out.name[:40]}... is too long: the file system holds names of at most "
                         f"{limit} bytes, and the staging name adds {NAME_MARGIN}")
    for part in resolved.parent.parts:
        if len(os.fsencode(part)) > limit:
            raise LorspError(f"output {name[:40]}... names a folder {part[:40]}... of {len(os.fsencode(part))} "
                             f"bytes: the file system holds names of at most {limit} bytes")
    return resolved


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if os.path.isdir(parent):  # False, not an error, for a name too long to look up
            return parent
    return Path("/")


class OutputClaim:
    """An output directory reserved by this process (see the module docstring); made by :func:`claim_output`."""

    def __init__(self, out: Path, resolved: Path, force: bool, min_free: int, inside_ok: bool = False):
        self.out, self.path, self.force, self.min_free, self.inside_ok = out, resolved, force, min_free, inside_ok
        self.created_parents: list[Path] = []
        self._lock_fd: int | None = None
        self._lock_path = resolved.parent / f".{resolved.name}.lock"
        self.published = False

    # ------------------------------------------------------------------ claim and release
    def acquire(self) -> None:
        parent = self.path.parent
        try:
            self._make_parents(parent)
        except OSError as exc:
            self.release()
            raise LorspError(f"cannot create the folder of output {_display(self.out)}: "
                             f"{exc.strerror or exc}") from None
        if not parent.is_dir():
            self.release()
            raise LorspError(f"the parent of output {_display(self.out)} is not a directory")
        for _ in range(8):  # a holder may unlink the lock file between our open and our flock
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                             0o644)
            except OSError as exc:
                self.release()
                if exc.errno == errno.ELOOP:
                    raise LorspError(f"{_display(self._lock_path)} is a symbolic link, not a lock lorsp wrote: "
                                     f"remove it or choose another output") from None
                raise LorspError(f"cannot write in {_display(parent)} (for output {_display(self.out)}): "
                                 f"{exc.strerror or exc}") from None
            if not is_lock_file(fd):
                os.close(fd)
                self.release()
                raise LorspError(f"{_display(self._lock_path)} is not a lock lorsp wrote (it holds something else): "
                                 f"move it away or choose another output")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                self.release()
                raise LorspError(f"output {_display(self.out)} is being written by another run (pid {holder}): "
                                 f"wait for it to end or choose another output") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self._lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:
            self.release()
            raise LorspError(f"could not lock output {_display(self.out)}: its lock file keeps changing")
        self._lock_fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        if os.path.lexists(self.path) and not self.force:  # published while we waited for the lock
            self.release()
            raise LorspError(f"output {_display(self.out)} already exists: pass --force to overwrite it")
        try:
            self.require_space(self.min_free)
        except LorspError:
            self.release()
            raise
        try:
            self.remove_stale_stages()
        except OSError as exc:
            self.release()
            raise LorspError(f"cannot restore what an interrupted run left beside output {_display(self.out)}: "
                             f"{exc.strerror or exc}") from None

    def _make_parents(self, parent: Path) -> None:
        """Create ``parent`` and its missing ancestors, recording those this claim made. Runs that start
        together (a grid's jobs) share ancestors: one made by another run meanwhile is used, not ours to remove;
        one removed by another run's release before we made our child in it is made again."""
        for _ in range(8):
            missing = [p for p in (parent, *parent.parents) if not p.exists()]
            try:
                for directory in reversed(missing):
                    try:
                        directory.mkdir()
                    except FileExistsError:
                        if not directory.is_dir():
                            raise
                        continue
                    self.created_parents.append(directory)
                return
            except FileNotFoundError:
                continue  # an ancestor vanished between our check and our mkdir: look again
        raise OSError(errno.ENOENT, "its parent folders keep vanishing")

    def add_inputs(self, sources: Iterable[str | Path | None]) -> None:
        """Inputs the command learns of after the claim (the data set a checkpoint names): refused as
        :func:`claim_output` refuses its ``sources``, before anything is written."""
        refuse_overlaps(self.out, self.path, sources, self.inside_ok)

    def require_space(self, nbytes: int) -> None:
        """Refuse (one line) when the output's file system has less than ``nbytes`` free: a caller that
        learns the size of what it will write calls this before writing it."""
        free = shutil.disk_usage(self.path.parent).free
        if free < nbytes:
            raise LorspError(f"only {free >> 20} MiB free in {_display(self.path.parent)}; output "
                             f"{_display(self.out)} needs about {-(-nbytes >> 20)} MiB")

    def remove_stale_stages(self) -> None:
        """What earlier runs for this output left when they died (we hold the lock: none is live): their staging
        directories, removed; an old ``OUT`` moved aside by a ``--force`` publish that was killed before the new
        one was renamed in, put back when ``OUT`` is missing (removed when ``OUT`` is there: it was replaced)."""
        for stale in self.path.parent.glob(f".{glob_escape(self.path.name)}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
        for aside in sorted(self.path.parent.glob(f".{glob_escape(self.path.name)}.*.old"), key=os.path.getmtime):
            previous = aside / "previous"
            if os.path.lexists(previous) and not os.path.lexists(self.path):
                rename_noreplace(previous, self.path)
            shutil.rmtree(aside, ignore_errors=True)

    def release(self) -> None:
        """Drop the lock (its file removed) and, unless published, the parent folders the claim made."""
        if self._lock_fd is not None:
            try:
                os.unlink(self._lock_path)  # while still locked: a waiting run then sees a new inode
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None
        if not self.published:
            for directory in reversed(self.created_parents):
                try:
                    directory.rmdir()
                except OSError:
                    break
            self.created_parents = []

    def __enter__(self) -> "OutputClaim":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    # ------------------------------------------------------------------ staging and publishing
    @contextmanager
    def staged(self) -> Iterator[Path]:
        """Yield a fresh ``.OUT.<random>.partial``; publish it as ``OUT`` when the block ends, remove it on any error.

        (A training run stages in its resumable ``OUT.partial`` and calls :meth:`publish` itself.)
        """
        stage = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent))
        try:
            try:
                yield stage
                self.publish(stage)
            except OSError as exc:
                raise LorspError(write_failure(self.out, exc)) from None
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise

    def publish(self, stage: Path) -> None:
        """Rename ``stage`` to ``OUT``: never over a directory that appeared meanwhile, over an old one only
        with force."""
        old = None
        if os.path.lexists(self.path):
            if not self.force:
                raise LorspError(f"output {_display(self.out)} appeared while this run worked; it was not replaced "
                                 f"(pass --force to replace it)")
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent))
            os.replace(self.path, old / "previous")
        os.chmod(stage, 0o755)  # mkdtemp makes 0700; outputs are for sharing
        try:
            rename_noreplace(stage, self.path)
        except FileExistsError:
            raise LorspError(f"output {_display(self.out)} appeared while this run worked; it was not "
                             f"replaced") from None
        self.published = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


LOCK_SIZE = 32
"""The most a lock file holds: one pid and a newline."""


def is_lock_file(fd: int) -> bool:
    """Whether open file ``fd`` is a lock lorsp writes: a regular file that is empty or holds one pid line."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > LOCK_SIZE:
        return False
    text = os.pread(fd, LOCK_SIZE, 0)
    return text == b"" or (text.endswith(b"\n") and text[:-1].isdigit())


def write_failure(out: Path, exc: OSError) -> str:
    """The one line for an ``OSError`` (a full disk, a file too large, ...) while writing output ``out``."""
    where = f" ({_display(Path(exc.filename))})" if exc.filename else ""
    return f"writing output {_display(out)} failed: {exc.strerror or exc}{where}; nothing was published"


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def claim_output(out: str | Path, force: bool, *, sources: Iterable[str | Path | None] = (),
                 inside_ok: bool = False, min_free: int = MIN_FREE_BYTES) -> OutputClaim:
    """Check and lock output ``out`` before any work (module docstring); use the result as a context manager.

    LorspError (one line) when ``out`` exists without ``force``, is or holds an input (or lies
    inside one, unless ``inside_ok``), cannot be written, has under ``min_free`` bytes free, or
    is being written by another run.
    """
    out = Path(out)
    resolved = check_output_path(out, force=force, sources=sources, inside_ok=inside_ok)
    claim = OutputClaim(out, resolved, force, min_free, inside_ok)
    claim.acquire()
    return claim
