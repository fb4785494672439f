"""Reusing a benchmark's exported bundle only while it is of the checkpoint the run holds now."""
from __future__ import annotations

import json
from pathlib import Path

from lorsp.plumbing.fileio import file_sha256


def bundle_is_current(bundle: Path, model: Path) -> bool:
    """Whether ``bundle`` (a ``lorsp-export`` folder) was exported from ``model`` as it is now: its manifest's
    ``source_checkpoint`` sha256 equals the file's. False when either is missing or unreadable, so a run
    trained again (same folder, new model.pt) is exported again instead of reporting the old model."""
    try:
        manifest = json.loads((bundle / "manifest.json").read_text())
        return manifest["source_checkpoint"]["sha256"] == file_sha256(model)
    except (OSError, ValueError, KeyError, TypeError):
        return False
