"""A pixel-gated LoRSP checkpoint's gate neurons as a NIR graph, run by ``lorsp-hwsim`` and checked against PyTorch.

    OMP_NUM_THREADS=1 .venv/bin/python examples/nir_pixel_gates.py runs/x/model.pt -o runs/x-gates --samples 64

Reads the checkpoint (a LoRSP model with ``--gate pixel``), takes the first ``--samples`` test images
of its dataset (or ``--dataset``), and writes into ``OUT`` (whole, or not at all):

* ``gates.nir``: ``Input (3, L, L) -> Conv2d -> LIF (1, L, L) -> Output``, the drive as the LIF's
  ``v_leak`` (export/nir_pixel.py; docs/hwsim-nir.md, "LoRSP's pixel gates as a NIR graph");
* ``spikes.npz``: the images' input spikes ``(T, N, 3, L, L)`` (lorsp's pool encoding at full resolution);
* ``pytorch_gate_spikes.npz``: PyTorch's gate spikes ``(T, N, 1, L, L)`` (``prompt.run_generator(x)``);
* ``report/``: ``lorsp-hwsim gates.nir --input spikes.npz --mode both`` (float and fixed point);
* ``summary.json``: whether the simulator's float and fixed-point gate spikes equal PyTorch's on every
  step, neuron and sample, the share of gates that fired, spikes per sample and the fixed-point scale.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys

import numpy as np
import torch

from export.bundle_writer import check_dataset, read_source
from export.nir_pixel import encoded_input, pixel_gate_parameters, write_pixel_gates_nir
from hw_sim.cli import main as hwsim
from lorsp.data import dataset_paths, load_split_images
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.publish import claim_output


def run(checkpoint: str, out: str, samples: int, dataset: str | None, force: bool) -> dict:
    """Write ``out`` (module docstring) and return its summary."""
    source = read_source(checkpoint)
    prompt, config = source.model.prompt, source.config
    pixel_gate_parameters(prompt)  # a prompt without pixel gates is refused before any work
    dataset = check_dataset(config, dataset)
    with claim_output(out, force, sources=[checkpoint, *dataset_paths(dataset, config.get("data_root"))]) as claim:
        x, _ = load_split_images(dataset, config["image_size"], samples, config.get("data_root"))
        with claim.staged() as stage:
            write_pixel_gates_nir(prompt, stage / "gates.nir")
            spikes = encoded_input(prompt, x)
            np.savez(stage / "spikes.npz", spikes=spikes)
            with torch.no_grad():
                reference = prompt.run_generator(x).gate_spikes.numpy().reshape(
                    spikes.shape[0], spikes.shape[1], 1, *spikes.shape[-2:])
            np.savez(stage / "pytorch_gate_spikes.npz", gate_spikes=reference)
            with contextlib.redirect_stdout(io.StringIO()):  # its summary line names the staging directory
                hwsim([str(stage / "gates.nir"), "--input", str(stage / "spikes.npz"), "--mode", "both",
                       "-o", str(stage / "report"), "--quiet"])
            report = json.loads((stage / "report" / "report.json").read_text())
            with np.load(stage / "report" / "outputs.npz") as arrays:
                float_out, fixed_out = arrays["output"], arrays["fixed.output"]
            fixed = report["runs"]["fixed"]
            summary = {"checkpoint": str(checkpoint), "dataset": dataset, "samples": int(spikes.shape[1]),
                       "steps": int(spikes.shape[0]), "image_size": int(spikes.shape[-1]),
                       "float_equal_pytorch": bool(np.array_equal(float_out, reference)),
                       "fixed_equal_pytorch": bool(np.array_equal(fixed_out, reference)),
                       "fixed_path": fixed.get("path"), "fixed_scale": fixed["per_node"][0]["scale"],
                       "gates_fired_share": float(reference.any(0).mean()),
                       "gate_spikes_per_sample": float(reference.sum() / spikes.shape[1])}
            (stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a LoRSP checkpoint trained with --gate pixel (model.pt)")
    p.add_argument("-o", "--out", required=True, help="directory to create")
    p.add_argument("--samples", type=int, default=64, help="test images to run")
    p.add_argument("--dataset", default=None, help="the check images' dataset (default: the model's)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    args = p.parse_args(argv)
    try:
        summary = run(args.checkpoint, args.out, args.samples, args.dataset, args.force)
    except LorspError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
