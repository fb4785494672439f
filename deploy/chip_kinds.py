"""Which chip network a bundle holds, by name: the one switch between the bundle kinds.

A prompt's gate decides it (:func:`kind_of_prompt`): band and row/column gating run a chain of
dense spiking layers (``chain``: :class:`deploy.network.SpikingNetwork`, the bundle layout of
docs/loihi.md); pixel gating one convolution into a gate neuron per pixel (``pixel-gates``:
:class:`deploy.pixel_bundle.PixelGateNetwork`). A pixel bundle's manifest names its kind in
:data:`FIELD`; a chain bundle's manifest has no such field (chain bundles are what they were before
there was a second kind, byte for byte). Each layer that handles a bundle keeps one small registry
keyed by these names: the writer (:data:`export.loihi.CHIP_SECTIONS`), the reader (:mod:`deploy.bundle`),
the simulators (:mod:`hw_sim.simulate`, :mod:`hw_sim.cosim`).
"""
from __future__ import annotations

from typing import Any

CHAIN = "chain"
PIXEL_GATES = "pixel-gates"
KINDS = (CHAIN, PIXEL_GATES)
FIELD = "chip_network"
"""The manifest field that names a bundle's kind (absent: ``chain``)."""
GATE_KINDS = {"pixel": PIXEL_GATES}
"""The kind of each gate that is not a chain's."""


def kind_of_prompt(prompt: Any) -> str:
    """The chip network kind of a prompt with a chip part (its ``gate``)."""
    return GATE_KINDS.get(getattr(prompt, "gate", None), CHAIN)


def kind_of_manifest(manifest: dict[str, Any]) -> str:
    """The chip network kind a (checked) manifest says its bundle holds."""
    return manifest.get(FIELD, CHAIN)


def manifest_fields(kind: str) -> dict[str, str]:
    """The manifest field that names ``kind`` (none for a chain: its manifests stay as they were)."""
    return {} if kind == CHAIN else {FIELD: kind}
