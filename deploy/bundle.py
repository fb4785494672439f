"""An exported Loihi bundle (``lorsp-export --target loihi``): its layout and its reader.

    DIR/
      prompt_generator.nir    the spiking generator, NIR (HDF5)
      prompt_generator.net    the same network in lava-dl netx HDF5, Loihi integers
      host.safetensors        the host side (:mod:`deploy.host`)
      manifest.json           sha256 of every file, source checkpoint, config, versions
      hw_sim/                 the simulation report, when the export ran it

:func:`open_bundle` checks every file against the manifest before anything is read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.host import HostParts, read_host
from deploy.network import SpikingNetwork
from deploy.nir_reader import load_network
from lorsp.fileio import file_sha256
from lorsp.errors import LorspError

NIR_FILE = "prompt_generator.nir"
NETX_FILE = "prompt_generator.net"
HOST_FILE = "host.safetensors"
MANIFEST_FILE = "manifest.json"
REPORT_DIR = "hw_sim"
MANIFEST_FORMAT = "lorsp-export"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: dict[str, Any]
    network: SpikingNetwork
    host: HostParts

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]


def read_manifest(root: Path) -> dict[str, Any]:
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
    return manifest


def verify_artifacts(root: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists exists and has its sha256."""
    for name, entry in manifest["artifacts"].items():
        path = root / name
        if not path.is_file():
            raise LorspError(f"{path} is listed in the manifest but missing")
        if file_sha256(path) != entry["sha256"]:
            raise LorspError(f"{path} does not match its sha256 in the manifest (modified or truncated)")


def open_bundle(path: str | Path) -> Bundle:
    root = Path(path)
    if not root.is_dir():
        raise LorspError(f"bundle directory not found: {root}")
    manifest = read_manifest(root)
    verify_artifacts(root, manifest)
    for required in (NIR_FILE, HOST_FILE):
        if required not in manifest["artifacts"]:
            raise LorspError(f"{root}: the manifest lists no {required}")
    return Bundle(root=root, manifest=manifest, network=load_network(root / NIR_FILE),
                  host=read_host(root / HOST_FILE))
