"""The deadline of every simulator run: :func:`lorsp.deadline.run_with_deadline` (its own process group,
stopped whole at ``--timeout`` or when the parent dies). It lives in :mod:`lorsp` so that the
readers of :mod:`deploy` can bound an HDF5 read with it too; the simulator backends import it from here.
"""
from __future__ import annotations

from lorsp.deadline import GRACE_S, POLL_S, check_timeout, run_with_deadline

__all__ = ["GRACE_S", "POLL_S", "check_timeout", "run_with_deadline"]
