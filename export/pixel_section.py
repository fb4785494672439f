"""The Loihi section of a pixel-gated LoRSP checkpoint: the gates' NIR graph, their netx conv file, the host file.

The pixel bundle kind (``chip_network: pixel-gates``, :mod:`deploy.chip_kinds`) holds the same files
as a chain bundle: ``prompt_generator.nir`` is the gates' graph (:func:`deploy.pixel_gates.pixel_gates_graph`,
with the bundle's NIR metadata), read back as a reader reads it (:func:`deploy.pixel_bundle.read_pixel_network`:
a graph that does not give PyTorch's parameters bit for bit is refused, and the rebuilt parameters must be the
prompt's); ``prompt_generator.net`` the netx conv file of their Loihi integers
(:func:`deploy.pixel_fixed.pixel_gate_integers`, :func:`export.netx_pixel.write_pixel_gates_netx_file`);
``host.safetensors`` the host side (:mod:`deploy.host`, with the gates' trained tensors and spike code).
The manifest says whether fixed point is exact by the chain's rule (:func:`deploy.pixel_fixed.pixel_fixed_point`);
``lorsp-export``'s simulation then measures it on the check images (:mod:`pipeline.chip_check`).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import nir
import torch

from deploy.bundle import HOST_FILE, NETX_FILE, NIR_FILE
from deploy.chip_kinds import PIXEL_GATES, manifest_fields
from deploy.hdf5_files import write_hdf5
from deploy.pixel_bundle import read_pixel_network
from deploy.pixel_gates import pixel_gate_parameters, pixel_gates_graph
from deploy.spec import nir_metadata
from export.host import write_host_scales
from export.netx_pixel import write_pixel_gates_netx_file
from lorsp.model import PromptedClassifier


def write_pixel_artifacts(model: PromptedClassifier, stage: Path, *, images: torch.Tensor,
                          dataset: str) -> dict[str, Any]:
    """NIR, netx and host files of pixel-gated ``model`` in ``stage``; the manifest section (module docstring)."""
    prompt = model.prompt
    graph = pixel_gates_graph(pixel_gate_parameters(prompt))
    graph.metadata.update(nir_metadata(prompt.encoding))
    write_hdf5(stage / NIR_FILE, functools.partial(nir.write, graph=graph))
    network = read_pixel_network(stage / NIR_FILE)
    network.check_prompt(prompt)
    write_pixel_gates_netx_file(network.integers, stage / NETX_FILE)
    write_host_scales(model, [network.integers.scale], stage / HOST_FILE)
    fixed_point, exact = network.fixed_point()
    with torch.no_grad():
        spikes = prompt.encode(images)
    return {
        **manifest_fields(PIXEL_GATES),
        "network": network.summary(),
        "fixed_point": fixed_point,
        "fixed_point_exact": exact,
        "checks": {"read_back": {"nir": "nir.read gives the gates' kernel, drive, beta, threshold, padding and T "
                                        "bit for bit, and the prompt's own",
                                 "netx": "the datasets and scale of the gates' integers"},
                   "input": {"dataset": dataset, "samples": int(images.shape[0]),
                             "input_spikes_per_image": float(spikes.sum() / max(int(images.shape[0]), 1))}},
        "on_chip": "the pixel gates: a k x k convolution of the image's spikes into one LIF per pixel "
                   "(prompt_generator.nir / .net)",
        "on_host": "input encoding (image -> 3 x L x L spikes), gate spikes -> low-rank prompt times the mask of "
                   "gates that fired, backbone and head (host.safetensors)",
    }
