"""Process-wide settings every entry point applies once.

glibc's malloc returns large freed buffers to the system and maps new ones on
the next step, so a CPU training loop spends about half its time in page
faults (measured on the project's 2-core machines: ~5x slower steps; see
docs/speed.md and ``benchmarks/train_speed.py``). Raising the mmap and trim
thresholds keeps those buffers in the heap. ``mallopt`` parameter numbers are
glibc's ``M_TRIM_THRESHOLD = -1`` and ``M_MMAP_THRESHOLD = -3`` (malloc.h).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 1 << 30
_applied = False


def tune_allocator(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Keep large buffers in glibc's heap; True when applied, False off glibc or when disabled.

    ``LORSP_MALLOC_TUNING=0`` turns it off (the benchmark uses this to measure the difference).
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("LORSP_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1 and libc.mallopt(M_TRIM_THRESHOLD, threshold) == 1
    except (OSError, AttributeError):
        return False
    _applied = bool(ok)
    return _applied
