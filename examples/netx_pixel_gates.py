"""A pixel-gated LoRSP checkpoint's gates as a lava-dl netx file, run in Lava and checked against PyTorch.

    OMP_NUM_THREADS=1 .venv-lava/bin/python examples/netx_pixel_gates.py runs/x/model.pt -o runs/x-netx --samples 16

Needs the Lava environment (lava-nc 0.10, lava-dl 0.6). Reads the checkpoint (a LoRSP model with ``--gate
pixel``), takes the first ``--samples`` test images of its dataset (or ``--dataset``), and writes into ``OUT``
(whole, or not at all):

* ``gates.net``: the gates as a netx file (``input`` then one ``conv`` layer of CUBA neurons with a bias
  mantissa per neuron; :mod:`export.netx_pixel`), with the general fixed-point path's integers
  (:func:`pipeline.netx_pixel.write_pixel_gates_netx`);
* ``summary.json``: whether the gate spikes of ``lava.lib.dl.netx.hdf5.Network`` on that file (``Loihi2SimCfg``
  ``fixed_pt``, ``reset_interval = T``; :func:`hw_sim.netx_conv.run_conv_netx`) equal PyTorch's
  (``prompt.run_generator(x).gate_spikes``) and the fast fixed path's (``lorsp-hwsim --mode fixed`` on the gates'
  NIR graph) on every step, neuron and image; the integers; the Lava run's steps and seconds.

The Lava run is stopped after ``--timeout`` seconds. Bad input: one ``error:`` line, exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np
import torch

from deploy.nir_graph import flat_graph
from export.bundle_writer import check_dataset, read_source
from export.nir_pixel import encoded_input, pixel_gate_parameters, pixel_gates_graph
from hw_sim.graph.fixed import fixed_run
from hw_sim.graph.runner import compile_graph
from hw_sim.netx_conv import run_conv_netx
from lorsp.data import dataset_paths, load_split_images
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.publish import claim_output
from pipeline.netx_pixel import write_pixel_gates_netx


def run(checkpoint: str, out: str, samples: int, dataset: str | None, timeout: float, force: bool) -> dict:
    """Write ``out`` (module docstring) and return its summary."""
    if not timeout > 0:
        raise LorspError(f"--timeout must be positive, got {timeout}")
    source = read_source(checkpoint)
    prompt, config = source.model.prompt, source.config
    params = pixel_gate_parameters(prompt)  # a prompt without pixel gates is refused before any work
    dataset = check_dataset(config, dataset)
    with claim_output(out, force, sources=[checkpoint, *dataset_paths(dataset, config.get("data_root"))]) as claim:
        x, _ = load_split_images(dataset, config["image_size"], samples, config.get("data_root"))
        with claim.staged() as stage:
            ints = write_pixel_gates_netx(params, stage / "gates.net")
            spikes = encoded_input(prompt, x)
            with torch.no_grad():
                reference = prompt.run_generator(x).gate_spikes.numpy().reshape(
                    spikes.shape[0], spikes.shape[1], 1, *spikes.shape[-2:]).astype(np.uint8)
            graph = pixel_gates_graph(params)
            fast = fixed_run(compile_graph(flat_graph(graph), float(graph.metadata["dt"])), spikes,
                             timeout=timeout, required=True)
            fast_out = fast.outputs["output"].astype(np.uint8)
            lava, details = run_conv_netx(str(stage / "gates.net"), spikes, timeout=timeout)
            summary = {
                "checkpoint": str(checkpoint), "dataset": dataset, "samples": int(spikes.shape[1]),
                "steps": int(spikes.shape[0]), "image_size": int(spikes.shape[-1]),
                "gate_neurons": int(np.prod(reference.shape[2:])),
                "lava_equal_pytorch": bool(np.array_equal(lava, reference)),
                "lava_equal_fast_fixed": bool(np.array_equal(lava, fast_out)),
                "fast_fixed_equal_pytorch": bool(np.array_equal(fast_out, reference)),
                "lava_agreement_with_pytorch": float((lava == reference).mean()),
                "fast_fixed_path": fast.block["path"],
                "gates_fired_share": float(reference.any(0).mean()),
                "gate_spikes_per_sample": float(reference.sum() / spikes.shape[1]),
                "integers": {"scale": ints.scale, "vth": ints.vth, "du": ints.du, "dv": ints.dv, "bias_exp": 6,
                             "weight_range": [int(ints.weight.min()), int(ints.weight.max())],
                             "bias_mant_range": [int(ints.bias_mant.min()), int(ints.bias_mant.max())],
                             "distinct_bias_mant": int(np.unique(ints.bias_mant).size)},
                "lava": {**details, "loader": "lava.lib.dl.netx.hdf5.Network (lava-dl 0.6.0)",
                         "process": "Conv (lava.proc.conv) -> LIFReset, bias_mant per neuron"},
                "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"}
            (stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a LoRSP checkpoint trained with --gate pixel (model.pt)")
    p.add_argument("-o", "--out", required=True, help="directory to create")
    p.add_argument("--samples", type=int, default=16, help="test images to run")
    p.add_argument("--dataset", default=None, help="the check images' dataset (default: the model's)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for each run (fast fixed, Lava)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    args = p.parse_args(argv)
    try:
        summary = run(args.checkpoint, args.out, args.samples, args.dataset, args.timeout, args.force)
    except LorspError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
