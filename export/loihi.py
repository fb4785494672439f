"""``--target loihi``: a LoRSP checkpoint -> the bundle of :mod:`deploy.bundle`.

Steps, all in a staging directory (``DIR`` claimed first, published at the end; the staging
directory removed on any error, :mod:`lorsp.plumbing.publish`):

1. read the checkpoint (``weights_only``) and refuse prompts without a spiking generator;
   steps 2-4 then follow the prompt's chip network kind (:mod:`deploy.chip_kinds`): a chain as below,
   pixel gates by :mod:`export.pixel_section`;
2. export the generator to NIR and check it (:mod:`export.nir`) on the input encodings
   of the first ``N`` test images of the model's dataset;
3. read the NIR file into the chip's description, convert it to Loihi integers
   (:mod:`deploy.fixed_point`) and write the netx file (:mod:`export.netx`);
4. write ``host.safetensors`` and ``manifest.json``;
5. when given a ``finish`` step, run it on the staged bundle (``lorsp-export`` passes the
   chip simulation of :mod:`pipeline.chip_check`, which writes its report into
   ``DIR/hw_sim``); the manifest then lists what it wrote too.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import nir
import torch

from deploy.bundle import HOST_FILE, NETX_FILE, NIR_FILE
from deploy.chip_kinds import CHAIN, PIXEL_GATES, kind_of_prompt
from deploy.fixed_point import exactness, quantise
from deploy.hdf5_files import write_hdf5
from deploy.nir_reader import load_network
from deploy.spec import netx_attributes, nir_metadata
from export.bundle_writer import Finish, check_dataset, read_source, write_export
from export.host import write_host
from export.netx import write_netx
from export.nir import check_description, check_nodes, check_round_trip, export_generator
from export.pixel_section import write_pixel_artifacts
from lorsp.data import dataset_paths, load_split_images
from lorsp.plumbing.publish import claim_output
from lorsp.model import PromptedClassifier
from lorsp.plumbing.registry import Registry


def export_loihi(checkpoint: str | Path, out: str | Path, *, samples: int = 64, force: bool = False,
                 dataset: str | None = None, finish: Finish | None = None) -> dict[str, Any]:
    """Write the Loihi bundle of ``checkpoint`` to ``out``; returns the manifest.

    ``finish``: run on the staged bundle before it is published (step 5), e.g. the chip
    simulation that ``lorsp-export`` adds; its fields join the manifest.
    """
    with claim_output(out, force, sources=[checkpoint]) as claim:
        source = read_source(checkpoint, generator_for="loihi")
        config = source.config
        dataset = check_dataset(config, dataset)
        claim.add_inputs(dataset_paths(dataset, config.get("data_root")))  # never published over the images
        x, _ = load_split_images(dataset, config["image_size"], samples, config.get("data_root"))
        section = functools.partial(write_loihi_artifacts, source.model, images=x, dataset=dataset)
        return write_export(claim, "loihi", source, [section], finish)


def write_loihi_artifacts(model: PromptedClassifier, stage: Path, *, images: torch.Tensor,
                          dataset: str) -> dict[str, Any]:
    """Steps 2-4 for a LoRSP ``model``, by its chip network kind (:data:`CHIP_SECTIONS`, keyed by
    :func:`deploy.chip_kinds.kind_of_prompt`); returns the manifest section."""
    return CHIP_SECTIONS.get(kind_of_prompt(model.prompt))(model, stage, images=images, dataset=dataset)


def write_chain_artifacts(model: PromptedClassifier, stage: Path, *, images: torch.Tensor,
                          dataset: str) -> dict[str, Any]:
    """Steps 2-4 for a LoRSP ``model`` whose generator is a chain: NIR, netx and host files in ``stage``, checked
    on ``images``.

    Returns the manifest section (network, fixed point, checks, what runs where).
    """
    generator, prompt = model.spiking_generator, model.prompt
    spikes_in = prompt.encode(images)
    graph = export_generator(generator, spikes_in.shape[-1])
    graph.metadata.update(nir_metadata(prompt.encoding))
    write_hdf5(stage / NIR_FILE, functools.partial(nir.write, graph=graph))
    checks = {"nodes": check_nodes(generator, graph),
              "round_trip": {"dataset": dataset, **check_round_trip(stage / NIR_FILE, generator, spikes_in)}}
    network = load_network(stage / NIR_FILE)
    checks["description"] = check_description(generator, network)
    fixed = quantise(network)
    write_netx(network, fixed, stage / NETX_FILE, netx_attributes(prompt.encoding.time_steps, len(fixed)))
    write_host(model, fixed, stage / HOST_FILE)
    return {
        "network": network.summary(),
        "fixed_point": [fx.summary(layer) for fx, layer in zip(fixed, network.layers)],
        "fixed_point_exact": exactness(network, fixed, prompt.time_steps),
        "checks": checks,
        "on_chip": "the spiking generator (prompt_generator.nir / .net)",
        "on_host": "input encoding, gate rates -> low-rank prompt, backbone and head (host.safetensors)",
    }


CHIP_SECTIONS: Registry[Callable[..., dict[str, Any]]] = Registry("chip network kind")
"""The Loihi section's writer per chip network kind (:mod:`deploy.chip_kinds`)."""
CHIP_SECTIONS.add(CHAIN, write_chain_artifacts)
CHIP_SECTIONS.add(PIXEL_GATES, write_pixel_artifacts)
