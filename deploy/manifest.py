"""``manifest.json``: what an export holds and where it came from, written and read here.

Every file of the export directory (but the manifest itself) is listed with its sha256
and size; :func:`read_manifest` and :func:`verify_artifacts` (run by
:func:`deploy.bundle.open_bundle`) refuse a directory that does not match.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import json

from lorsp.errors import LorspError
from lorsp.fileio import file_sha256, write_json

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "lorsp-export"
MANIFEST_VERSION = 1
SPEC_FORMAT = "lorsp-bundle-spec"
SPEC_VERSION = 1
"""The bundle spec's version (manifest ``spec``, built by :mod:`deploy.spec`): raised whenever a field
changes meaning; every reader refuses another version."""


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


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the export at ``root``; LorspError when it is missing, unreadable or of another format."""
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise LorspError(f"{root} is not an exported bundle: no {MANIFEST_FILE}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LorspError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise LorspError(f"{path} is not a lorsp export manifest")
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise LorspError(f"{path}: manifest version {manifest.get('format_version')} is not supported")
    for key in ("artifacts", "config", "classes"):
        if key not in manifest:
            raise LorspError(f"{path} lacks {key!r}")
    check_spec_version(manifest.get("spec"), path)
    return manifest


def check_spec_version(spec: Any, source: str | Path) -> None:
    """LorspError naming both versions unless ``spec`` is a bundle spec of :data:`SPEC_VERSION`."""
    found = spec.get("version") if isinstance(spec, dict) and spec.get("format") == SPEC_FORMAT else None
    if found != SPEC_VERSION:
        shown = "none (written before the spec)" if found is None else found
        raise LorspError(f"{source}: bundle spec version {shown} is not supported; this reader reads spec version "
                         f"{SPEC_VERSION} (export the checkpoint again)")


def verify_artifacts(root: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists exists and has its sha256."""
    for name, entry in manifest["artifacts"].items():
        path = root / name
        if not path.is_file():
            raise LorspError(f"{path} is listed in the manifest but missing")
        if file_sha256(path) != entry["sha256"]:
            raise LorspError(f"{path} does not match its sha256 in the manifest (modified or truncated)")
