"""Listing a folder of class subfolders of images: bounded, never following a link, never into special file systems.

    paths, targets, classes = list_image_folder(Path("pets"), "imagefolder:pets")

``torchvision``'s ``ImageFolder`` walks with ``os.walk(followlinks=True)``: two links to ``..``
make it run forever, and it will happily walk ``/proc``. Here

* an empty path is refused (it would mean the current directory);
* a folder on a kernel file system (``/proc``, ``/sys``, ``/dev`` and their kin) is refused;
* links (to folders or files) are skipped, never followed; only regular files are taken;
* the walk goes at most :data:`MAX_DEPTH` folders below a class folder and looks at most at
  :data:`MAX_ENTRIES` entries, and is refused past either, in one line.

Classes are the sorted names of the subfolders; images are the files whose suffix torchvision
reads as an image (``IMG_EXTENSIONS``), sorted, as ``ImageFolder`` lists them.
"""
from __future__ import annotations

import os
from pathlib import Path

from lorsp.plumbing.errors import LorspError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""torchvision's ``IMG_EXTENSIONS``."""
MAX_DEPTH = 16
MAX_ENTRIES = 2_000_000
SPECIAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
SPECIAL_FILE_SYSTEMS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
                        "securityfs", "configfs", "fusectl", "bpf", "pstore", "mqueue", "hugetlbfs", "binfmt_misc",
                        "autofs", "efivarfs", "rpc_pipefs", "nsfs"}


def file_system_type(path: Path) -> str | None:
    """The type of the file system ``path`` lies on (from ``/proc/mounts``), or None where it cannot be read."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    text = str(path)
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (text == point or text.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def check_folder(path_text: str, name: str) -> Path:
    """The folder ``path_text`` names, resolved; LorspError for an empty name, a missing folder, a special one."""
    if not path_text.strip():
        raise LorspError(f"dataset {name}: no folder given (imagefolder:PATH needs a PATH)")
    path = Path(path_text).expanduser()
    if not path.is_dir():
        raise LorspError(f"dataset {name}: folder {path} not found")
    real = path.resolve()
    kind = file_system_type(real)
    if any(real == root or root in real.parents for root in SPECIAL_ROOTS) or kind in SPECIAL_FILE_SYSTEMS:
        raise LorspError(f"dataset {name}: {path} is on a kernel file system ({kind or 'special'}), not a folder "
                         f"of images")
    return path


def _walk(folder: Path, name: str, budget: list[int], depth: int = 0) -> list[Path]:
    if depth > MAX_DEPTH:
        raise LorspError(f"dataset {name}: folders nested deeper than {MAX_DEPTH} below a class folder at {folder}")
    found: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise LorspError(f"dataset {name}: cannot list {folder}: {exc.strerror or exc}") from None
    for entry in entries:
        budget[0] -= 1
        if budget[0] < 0:
            raise LorspError(f"dataset {name}: more than {MAX_ENTRIES} entries; not an image folder lorsp reads")
        if entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            found += _walk(Path(entry.path), name, budget, depth + 1)
        elif entry.is_file(follow_symlinks=False) and entry.name.lower().endswith(IMAGE_SUFFIXES):
            found.append(Path(entry.path))
    return found


def list_image_folder(path: Path, name: str) -> tuple[list[Path], list[int], list[str]]:
    """``(paths, targets, classes)`` of the class subfolders of ``path`` (module docstring)."""
    budget = [MAX_ENTRIES]
    try:
        classes = sorted(e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False) and not e.is_symlink())
    except OSError as exc:
        raise LorspError(f"dataset {name}: cannot list {path}: {exc.strerror or exc}") from None
    paths: list[Path] = []
    targets: list[int] = []
    for k, cls in enumerate(classes):
        images = _walk(path / cls, name, budget)
        paths += images
        targets += [k] * len(images)
    return paths, targets, classes
