"""``manifest.json``: what an export holds and where it came from.

Every file of the export directory (but the manifest itself) is listed with its sha256
and size; :func:`deploy.bundle.open_bundle` refuses a directory that does not match.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from deploy.bundle import MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION
from lorsp.fileio import file_sha256
from lorsp.fileio import write_json


def artifact_entries(root: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` of every file under ``root`` but the manifest."""
    return {p.relative_to(root).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE}


def write_manifest(root: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Hash the files under ``root`` and write the manifest with ``fields``; returns it."""
    manifest = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
                "artifacts": artifact_entries(root), **fields}
    write_json(root / MANIFEST_FILE, manifest)
    return manifest
