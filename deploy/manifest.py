"""``manifest.json``: what an export holds and where it came from, written and read here.

Every file of the export directory (but the manifest itself) is listed with its sha256
and size, and the manifest carries the sha256 of its own canonical form; :func:`read_manifest`
(every field checked by :mod:`deploy.manifest_schema`) and :func:`verify_artifacts` (run by
:func:`deploy.bundle.open_bundle`) refuse a directory that does not match.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import json

from deploy.manifest_schema import check_manifest, manifest_digest
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import file_sha256, unique_keys, write_json

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "lorsp-export"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 16 << 20
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
                "artifacts": artifact_entries(root), **{k: v for k, v in fields.items() if k != "integrity"}}
    manifest["integrity"] = {"sha256": manifest_digest(manifest)}
    write_json(root / MANIFEST_FILE, manifest)
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the export at ``root``; LorspError when it is missing, unreadable or of another format."""
    path = root / MANIFEST_FILE
    if path.is_symlink():
        raise LorspError(f"{path} is a symbolic link: a bundle's manifest must be a file of its own")
    if not path.is_file():
        raise LorspError(f"{root} is not an exported bundle: no {MANIFEST_FILE}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise LorspError(f"{path} is larger than {MAX_MANIFEST_BYTES >> 20} MiB: not a lorsp manifest")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=unique_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise LorspError(f"{path} is not readable JSON: {str(exc)[:160]}") from None
    except RecursionError:
        raise LorspError(f"{path} is nested too deeply to be a lorsp manifest") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise LorspError(f"{path} is not a lorsp export manifest")
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise LorspError(f"{path}: manifest version {manifest.get('format_version')} is not supported")
    check_spec_version(manifest.get("spec"), path)  # first: an older bundle is told so, by version
    return check_manifest(manifest, str(path))


def check_spec_version(spec: Any, source: str | Path) -> None:
    """LorspError naming both versions unless ``spec`` is a bundle spec of :data:`SPEC_VERSION`."""
    found = spec.get("version") if isinstance(spec, dict) and spec.get("format") == SPEC_FORMAT else None
    if found != SPEC_VERSION:
        shown = "none (written before the spec)" if found is None else found
        raise LorspError(f"{source}: bundle spec version {shown} is not supported; this reader reads spec version "
                         f"{SPEC_VERSION} (export the checkpoint again)")


def verify_artifacts(root: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is a plain file inside ``root`` (no link out of it), of its size and sha256."""
    inside = root.resolve()
    for name, entry in manifest["artifacts"].items():
        path = root / name
        try:
            _verify_artifact(path, entry, inside)
        except OSError as exc:  # a path the file system cannot take (too long), a folder it may not read
            raise LorspError(f"cannot read artifact {name[:80]!r} of {root}: {exc.strerror or exc}") from None


def _verify_artifact(path: Path, entry: dict[str, Any], inside: Path) -> None:
    if not path.is_file():
        raise LorspError(f"{path} is listed in the manifest but missing")
    if path.is_symlink() or inside not in path.resolve().parents:
        raise LorspError(f"{path} is a link or leads out of the bundle: every file must lie in it")
    if path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
        raise LorspError(f"{path} does not match its sha256 in the manifest (modified or truncated)")
