"""What every chip-side run shares: the model rebuilt from a bundle, its PyTorch reference, provenance.

``lorsp-hwsim`` (:mod:`hw_sim.simulate`) and ``lorsp-cosim`` (:mod:`hw_sim.cosim`) both

1. rebuild the PyTorch model from the bundle's own files (:func:`rebuild`),
2. run it on the same images as the chip, as the reference (:func:`reference`),
3. count the chip's operations on the synapses it holds in a mode (:func:`chip_weights`),
4. stamp their report with where it came from (:func:`bundle_fields`, :func:`provenance`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deploy.bundle import Bundle
from deploy.fixed_point import quantise
from deploy.host import HostParts, rebuild_model
from deploy.network import SpikingNetwork
from hw_sim.stamp import provenance  # noqa: F401  (re-exported: simulate and cosim stamp reports with it)
from lorsp.model import PromptedClassifier


def rebuild(bundle: Bundle) -> PromptedClassifier:
    """The PyTorch model of ``bundle``, from its host file and NIR network (backbone weights checked by sha256)."""
    return rebuild_model(bundle.config, bundle.manifest["classes"], bundle.manifest.get("backbone_weights_sha256"),
                         bundle.network, bundle.host)


@dataclass(frozen=True)
class Reference:
    """What the PyTorch model gives for a batch ``x``: the chip's results are compared with it."""

    prompt: torch.Tensor
    """``model.prompt(x)``, ``(N, 3, L, L)``."""
    prompted: torch.Tensor
    """``x + prompt``, what the backbone reads."""
    logits: torch.Tensor
    """``(N, classes)``."""
    layer_spikes: list[np.ndarray]
    """The generator's spikes per layer, uint8 ``(T, N, width)``."""


@torch.no_grad()
def reference(model: PromptedClassifier, x: torch.Tensor) -> Reference:
    """PyTorch's prompt, prompted images, logits and generator spikes for images ``x`` in [0, 1]."""
    prompt, trace = model.prompt.trace(x)
    spikes = [s.numpy().astype(np.uint8) for s in trace.layer_spikes]
    prompted = x + prompt
    return Reference(prompt, prompted, model.classify(prompted), spikes)


def chip_weights(network: SpikingNetwork, mode: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The synapses and biases the chip holds in ``mode`` (zeros decide which synops exist)."""
    if mode == "fixed":
        fixed = quantise(network)
        return [f.weight for f in fixed], [f.bias_mant for f in fixed]
    return [l.weight for l in network.layers], [l.bias for l in network.layers]


def encoding_fields(host: HostParts) -> dict[str, Any]:
    """The report's ``encoding`` block: the instance encoding's name, size and ``D``."""
    e = host.encoding
    return {"name": e.name, "size": e.size, "inputs": e.inputs}


def bundle_fields(bundle: Bundle) -> dict[str, Any]:
    """The report's ``bundle`` block: where the bundle is and what it was exported from."""
    return {"path": str(bundle.root), "source_checkpoint": bundle.manifest.get("source_checkpoint"),
            "git_commit": bundle.manifest.get("git_commit")}

