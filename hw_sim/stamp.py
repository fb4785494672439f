"""The ``provenance`` block every hw_sim report carries: versions, commit, machine, command line, time."""
from __future__ import annotations

import datetime as _dt
import sys
from typing import Any

from lorsp.plumbing.provenance import git_commit, machine, versions


def provenance() -> dict[str, Any]:
    """The report's ``provenance`` block: versions, commit, machine, command line, time."""
    return {"versions": versions(), "git_commit": git_commit(), "machine": machine(),
            "command": " ".join(sys.argv), "created": _dt.datetime.now().isoformat(timespec="seconds")}
