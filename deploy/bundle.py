"""An exported Loihi bundle (``lorsp-export --target loihi``): its layout and its reader.

    DIR/
      prompt_generator.nir    the spiking generator, NIR (HDF5)
      prompt_generator.net    the same network in lava-dl netx HDF5, Loihi integers
      host.safetensors        the host side (:mod:`deploy.host`)
      manifest.json           sha256 of every file, source checkpoint, config, versions
      hw_sim/                 the simulation report, when the export ran it

:func:`open_bundle` checks the manifest (:mod:`deploy.manifest_schema`) and every file against it
before anything is read, then the netx file and the host's fixed-point scales against the NIR network.
What the NIR and netx files hold depends on the bundle's chip network kind (:mod:`deploy.chip_kinds`): a
chain of dense layers (:class:`deploy.network.SpikingNetwork`) or, for pixel gating, the gates'
convolution (:class:`deploy.pixel_bundle.PixelGateNetwork`); :data:`CHIP_READERS` reads each.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from deploy.chip_kinds import CHAIN, PIXEL_GATES, kind_of_manifest
from deploy.host import HostParts, read_host
from deploy.manifest import MANIFEST_FILE, read_manifest, verify_artifacts
from deploy.netx_layout import check_netx
from deploy.network import SpikingNetwork
from deploy.nir_reader import load_network
from deploy.pixel_bundle import PixelGateNetwork, check_pixel_files, read_pixel_network
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.registry import Registry
from lorsp.stored_paths import with_named_paths

NIR_FILE = "prompt_generator.nir"
NETX_FILE = "prompt_generator.net"
HOST_FILE = "host.safetensors"
REPORT_DIR = "hw_sim"
LAYOUT = (NIR_FILE, NETX_FILE, HOST_FILE, MANIFEST_FILE, REPORT_DIR)
"""The names a Loihi bundle holds (the report directory only when the export simulated it)."""


@dataclass(frozen=True)
class Bundle:
    """An opened bundle: its directory, its checked manifest, the chip's network and the host's tensors."""

    root: Path
    manifest: dict[str, Any]
    network: SpikingNetwork | PixelGateNetwork
    host: HostParts
    kind: str = CHAIN
    """The chip network kind (:mod:`deploy.chip_kinds`): ``chain`` or ``pixel-gates``."""

    @property
    def config(self) -> dict[str, Any]:
        """The run's config, with the paths the command named in place of those it stores
        (:func:`lorsp.stored_paths.with_named_paths`: a stored path the command would read unnamed is refused)."""
        return with_named_paths(self.manifest["config"], str(self.root / MANIFEST_FILE))


@dataclass(frozen=True)
class ChipReader:
    """How one chip network kind is read: its network from the NIR file, then checked with the netx and host files."""

    read: Callable[[Path], SpikingNetwork | PixelGateNetwork]
    check: Callable[[Path, SpikingNetwork | PixelGateNetwork, HostParts], None]


CHIP_READERS: Registry[ChipReader] = Registry("chip network kind")
CHIP_READERS.add(CHAIN, ChipReader(
    read=lambda root: load_network(root / NIR_FILE),
    check=lambda root, network, host: check_netx(root / NETX_FILE, network, host.fixed_point_scale.numpy())))
CHIP_READERS.add(PIXEL_GATES, ChipReader(
    read=lambda root: read_pixel_network(root / NIR_FILE),
    check=lambda root, network, host: check_pixel_files(network, root / NETX_FILE, host.fixed_point_scale.numpy(),
                                                        host.time_steps, host.encoding.size)))


def open_bundle(path: str | Path) -> Bundle:
    """Open the bundle at ``path``: its manifest read, every file checked by sha256, then NIR and host file read."""
    root = Path(path)
    if not root.is_dir():
        raise LorspError(f"bundle directory not found: {root}")
    manifest = read_manifest(root)
    verify_artifacts(root, manifest)
    for required in (NIR_FILE, NETX_FILE, HOST_FILE):
        if required not in manifest["artifacts"]:
            raise LorspError(f"{root}: the manifest lists no {required}")
    kind = kind_of_manifest(manifest)
    reader = CHIP_READERS.get(kind)
    network, host = reader.read(root), read_host(root / HOST_FILE)
    reader.check(root, network, host)  # the file a Loihi loads
    return Bundle(root=root, manifest=manifest, network=network, host=host, kind=kind)
