"""What a ``manifest.json`` may hold: every field's type, paths kept inside the bundle, the hashes it needs,
and a digest of the manifest itself.

The manifest is the one file the sha256 checks cannot cover (it holds them), so it is read as
hostile input: :func:`check_manifest` refuses, in one line naming the field,

* a field of the wrong type, or a field no writer writes (:data:`SCHEMA`; a new field is one line
  there);
* an artifact path that is absolute, holds ``..`` or a backslash, or names the manifest itself, or
  that no file system can hold (a part over :data:`MAX_NAME_BYTES`, the whole over
  :data:`MAX_PATH_BYTES` bytes of UTF-8);
  an ONNX file that is not a listed artifact;
* a missing or malformed sha256 (artifacts, source checkpoint, backbone weights);
* a manifest whose ``integrity.sha256`` is not the sha256 of its canonical form
  (:func:`manifest_digest`): an edited figure, class name or dropped artifact is caught;
* JSON nested deeper than :data:`MAX_DEPTH`.

The config and class list are checked as a checkpoint's are (:mod:`lorsp.stored_config`).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import PurePosixPath
from typing import Any, Callable

from deploy.chip_kinds import KINDS as CHIP_KINDS
from lorsp.plumbing.errors import LorspError
from lorsp.stored_config import check_classes, check_stored_config

MAX_DEPTH = 16
"""Deepest nesting of lists and objects any field may have."""
SHA256 = re.compile(r"[0-9a-f]{64}")
TARGETS = ("loihi", "onnx", "all")
ONNX_PRECISIONS = ("fp32", "fp16", "int8", "int8-trt")
"""The keys of ``onnx.files`` (:data:`deploy.onnx_runtime.PRECISIONS`, spelt out here so that reading a
manifest does not import onnxruntime; tests/test_hostile_readers.py keeps the two equal)."""
Check = Callable[[Any, str], None]
MAX_NAME_BYTES = 255
"""The longest file name an artifact path may hold (``NAME_MAX`` of Linux file systems)."""
MAX_PATH_BYTES = 1024
"""The longest artifact path (a bundle holds a handful of short names; the bundle's own path comes on top)."""


def _fail(where: str, what: str) -> LorspError:
    return LorspError(f"{where} {what}")


def text(value: Any, where: str) -> None:
    if not isinstance(value, str) or len(value) > 10_000:
        raise _fail(where, "must be text")


def optional_text(value: Any, where: str) -> None:
    if value is not None:
        text(value, where)


def whole(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(where, "must be a whole number >= 0")


def sha256(value: Any, where: str) -> None:
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        raise _fail(where, "must be a sha256 (64 lowercase hex digits)")


def relative_path(value: Any, where: str) -> None:
    """A path inside the bundle: relative, POSIX, no ``..``, ``.`` or empty parts, each part a name a file system
    can hold."""
    text(value, where)
    parts = value.split("/")
    if not value or value.startswith("/") or "\\" in value or "\0" in value or \
            any(p in ("", ".", "..") for p in parts) or PurePosixPath(value).name == "manifest.json":
        raise _fail(where, f"{value[:80]!r} is not a path inside the bundle")
    try:
        sizes = [len(p.encode("utf-8")) for p in parts]
    except UnicodeEncodeError:
        raise _fail(where, f"{value[:80]!r} is not UTF-8 text, so no file can have that name") from None
    total = sum(sizes) + len(parts) - 1
    if max(sizes) > MAX_NAME_BYTES or total > MAX_PATH_BYTES:
        raise _fail(where, f"{value[:60]!r} ({total} bytes) is longer than a file system holds ({MAX_NAME_BYTES} bytes a name, "
                           f"{MAX_PATH_BYTES} a path)")


def plain(value: Any, where: str, depth: int = 0) -> None:
    """Plain JSON (what a report figure is), nested at most :data:`MAX_DEPTH` deep."""
    if depth > MAX_DEPTH:
        raise _fail(where, f"is nested deeper than {MAX_DEPTH}")
    if isinstance(value, dict):
        for k, v in value.items():
            plain(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            plain(v, f"{where}[{i}]", depth + 1)
    elif not isinstance(value, (str, int, float, bool, type(None))):
        raise _fail(where, "is not plain JSON")


def obj(fields: dict[str, Check], required: tuple[str, ...] = (), rest: Check | None = None) -> Check:
    """A JSON object with ``fields`` (each checked when present), ``required`` ones, other keys checked by ``rest``
    (refused when None)."""
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _fail(where, "must be an object")
        for key in required:
            if key not in value:
                raise _fail(where, f"lacks {key!r}")
        for key, v in value.items():
            sub = f"{where}.{key}"
            if key in fields:
                fields[key](v, sub)
            elif rest is not None:
                rest(v, sub)
            else:
                raise _fail(where, f"has a field no lorsp writer writes: {key[:60]!r}")
    return check


def mapping(keys: Check, values: Check) -> Check:
    """An object whose keys and values are each checked."""
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _fail(where, "must be an object")
        for k, v in value.items():
            keys(k, f"{where} key")
            values(v, f"{where}[{k[:80]!r}]")
    return check


def list_of(item: Check) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise _fail(where, "must be a list")
        for i, v in enumerate(value):
            item(v, f"{where}[{i}]")
    return check


def one_of(*choices: str) -> Check:
    def check(value: Any, where: str) -> None:
        if value not in choices:
            raise _fail(where, f"must be one of {', '.join(choices)}")
    return check


ARTIFACT = obj({"sha256": sha256, "bytes": whole}, required=("sha256", "bytes"))
ONNX = obj({"files": mapping(one_of(*ONNX_PRECISIONS), relative_path), "input": text, "output": text,
            "image_size": whole, "providers": list_of(text), "macs_per_image": whole, "dataset": text},
           required=("files", "input", "output", "image_size", "macs_per_image"), rest=plain)
SCHEMA: dict[str, Check] = {
    "format": text, "format_version": whole,
    "artifacts": mapping(relative_path, ARTIFACT),
    "target": one_of(*TARGETS),
    "source_checkpoint": obj({"path": text, "sha256": sha256}, required=("path", "sha256")),
    "config": lambda v, where: check_stored_config(v, where),
    "classes": lambda v, where: check_classes(v, where),
    "backbone_weights_sha256": sha256,
    "chip_network": one_of(*CHIP_KINDS),
    "network": plain, "fixed_point": list_of(plain), "fixed_point_exact": plain, "checks": plain, "on_chip": text,
    "on_host": text,
    "onnx": ONNX, "simulation": plain, "spec": plain,
    "versions": mapping(text, optional_text), "git_commit": optional_text, "machine": plain,
    "integrity": obj({"sha256": sha256}, required=("sha256",)),
}
"""Every top-level field a lorsp export writes, and its check."""
REQUIRED = ("format", "format_version", "artifacts", "target", "source_checkpoint", "config", "classes",
            "backbone_weights_sha256", "integrity")


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (keys sorted, no spaces), its ``integrity`` field left out."""
    body = {k: v for k, v in manifest.items() if k != "integrity"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def check_manifest(manifest: Any, source: str) -> dict[str, Any]:
    """``manifest`` if it passes the module docstring's checks; LorspError (one line) naming the field otherwise."""
    obj(SCHEMA, required=REQUIRED)(manifest, f"{source}: manifest")
    if manifest["integrity"]["sha256"] != manifest_digest(manifest):
        raise LorspError(f"{source}: the manifest does not match its integrity sha256 (edited after the export)")
    onnx = manifest.get("onnx")
    if onnx is not None:
        for precision, name in onnx["files"].items():
            if name not in manifest["artifacts"]:
                raise LorspError(f"{source}: onnx.files.{precision} {name!r} is not a listed artifact")
        if onnx["image_size"] != manifest["config"]["image_size"]:
            raise LorspError(f"{source}: onnx.image_size {onnx['image_size']} differs from the config's "
                             f"{manifest['config']['image_size']}")
    return manifest
