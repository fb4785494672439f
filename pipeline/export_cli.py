"""``lorsp-export``: write a trained checkpoint out as files for a target.

    lorsp-export --target loihi runs/x/model.pt -o runs/x/loihi --samples 64
    lorsp-export --target onnx runs/x/model.pt -o runs/x/onnx --precision fp32 int8 --providers cpu
    lorsp-export --target all runs/x/model.pt -o runs/x/deploy --precision fp32 fp16 int8

A target is one function ``(checkpoint, out, **options) -> manifest`` and one line in
:mod:`export.targets`; it receives the options its signature names. A target that takes
``finish`` writes a bundle a chip simulator opens: unless ``--no-simulate``, the staged
bundle is then simulated (:mod:`pipeline.chip_check`) before it is published.
"""
from __future__ import annotations

import argparse
import inspect
from typing import Any, Iterator

from pathlib import Path

from deploy.onnx_runtime import PRECISIONS, PROVIDER_NAMES
from export.targets import get_target, list_targets
from lorsp.plumbing.cli import run_cli
from lorsp.plumbing.cli_options import OptionParser, count, seconds
from lorsp.data import list_datasets
from lorsp.plumbing.errors import LorspError
from lorsp.stored_paths import add_path_flags, name_paths_of
from pipeline.chip_check import DEFAULT_TIMEOUT, simulation_step

TARGET_FLAGS = {"run_simulation": "--no-simulate", "timeout": "--timeout", "precisions": "--precision",
                "providers": "--providers"}
"""Options some targets take, and the flag that sets each; giving one to a target without it is an error."""
SIMULATION_OPTIONS = ("run_simulation", "timeout")
"""Options of the chip simulation, taken by the targets whose signature has ``finish``."""


def target_parameters(target: str) -> set[str]:
    """The options ``target`` takes: its keyword parameters, with the simulation's where it takes ``finish``."""
    names = set(inspect.signature(get_target(target)).parameters)
    return names | set(SIMULATION_OPTIONS) if "finish" in names else names


def export(target: str, checkpoint: str | Path, out: str | Path, *, run_simulation: bool = True,
           timeout: float = DEFAULT_TIMEOUT, progress: bool = True, **options: Any) -> dict[str, Any]:
    """Run export ``target`` on ``checkpoint`` into ``out`` and, where it applies, the chip simulation; the manifest.

    ``options`` go to the target as its signature names them (``samples``, ``force``,
    ``dataset``, ``precisions``, ``providers``); the simulation reads the same ``samples``
    and ``dataset``.
    """
    write = get_target(target)
    accepted = inspect.signature(write).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise LorspError(f"--target {target} takes no option {unknown[0]!r}")
    if "finish" in accepted and run_simulation:
        options["finish"] = simulation_step(Path(out), dataset=options.get("dataset"),
                                            samples=options.get("samples", 64), timeout=timeout, progress=progress)
    return write(checkpoint, out, **options)


def build_parser() -> argparse.ArgumentParser:
    p = OptionParser(prog="lorsp-export", description=__doc__.splitlines()[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", metavar="MODEL.pt", help="a lorsp checkpoint (lorsp-train's model.pt)")
    p.add_argument("--target", required=True, choices=list_targets(),
                   help="loihi: the spiking generator for Loihi (LoRSP only); onnx: backbone and head as ONNX "
                        "(any prompt); all: both in one directory under one manifest (LoRSP only)")
    p.add_argument("-o", "--out", required=True, help="directory to create")
    p.add_argument("--samples", type=count(), default=64,
                   help="N test images for the checks (NIR round trip, ONNX parity) and the simulation")
    p.add_argument("--dataset", default=None,
                   help=f"images for the checks ({', '.join(list_datasets())}); default: the model's dataset")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=argparse.SUPPRESS, metavar="P",
                   help=f"onnx, all: ONNX precisions, one or more of {', '.join(PRECISIONS)} "
                        f"(fp32 is always written; only fp32 when not given)")
    p.add_argument("--providers", nargs="+", default=argparse.SUPPRESS, metavar="EP",
                   help=f"onnx, all: onnxruntime execution providers the files are checked on, in order "
                        f"({', '.join(PROVIDER_NAMES)}; cpu when not given)")
    p.add_argument("--no-simulate", action="store_true",
                   help="loihi, all: skip the hardware simulation and its report")
    p.add_argument("--timeout", type=seconds(), default=argparse.SUPPRESS,
                   help="loihi, all: seconds allowed per simulator run (600 when not given)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_path_flags(p)
    return p


def target_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword options of :func:`export` for ``args.target``; LorspError for a flag the target does not take."""
    accepted = target_parameters(args.target)
    given = {"run_simulation": False if args.no_simulate else None, "timeout": getattr(args, "timeout", None),
             "precisions": getattr(args, "precision", None), "providers": getattr(args, "providers", None)}
    refused = [name for name, value in given.items() if value is not None and name not in accepted]
    if refused:
        raise LorspError(f"{TARGET_FLAGS[refused[0]]} does not apply to --target {args.target}")
    options = {"samples": args.samples, "force": args.force, "dataset": args.dataset, "progress": not args.quiet,
               **{name: value for name, value in given.items() if value is not None}}
    return {name: value for name, value in options.items() if name in accepted or name == "progress"}


def summary_lines(manifest: dict[str, Any]) -> Iterator[str]:
    """What a user reads after an export: the checks of every section the manifest holds."""
    round_trip = manifest.get("checks", {}).get("round_trip")
    if round_trip:
        yield f"NIR round trip: {100 * round_trip['agreement']:.2f}% of spikes equal on {round_trip['samples']} samples"
    simulation = manifest.get("simulation", {})
    for mode in ("float", "fixed"):
        sim = simulation.get(mode)
        if sim:
            yield (f"chip ({simulation.get('backend', 'lava')} backend) {mode}: "
                   f"{100 * sim['spike_agreement']:.2f}% spikes equal to PyTorch, accuracy "
                   f"{sim['accuracy_chip']:.4f} (PyTorch {sim['accuracy_pytorch']:.4f})")
    onnx = manifest.get("onnx")
    if onnx:
        for precision, parity in onnx["parity"].items():
            bound = "" if parity["tolerance"] is None else f" (allowed {parity['tolerance']:g})"
            if parity["tolerance"] is not None and parity.get("tolerance_kind") == "relative":
                bound = f" (allowed {parity['tolerance']:g} x max |logit| {parity['max_abs_logit']:.3g})"
            yield (f"ONNX {precision} parity: max |logit diff| {parity['max_abs_logit_diff']:.3g}{bound} vs PyTorch "
                   f"on {parity['samples']} {onnx['dataset']} test images, "
                   f"{100 * parity['prediction_agreement']:.2f}% of predictions equal")
        for precision, accuracy in onnx.get("accuracy", {}).items():
            yield (f"ONNX {precision} accuracy {accuracy['accuracy']:.4f} on {accuracy['samples']} validation "
                   f"images, drop vs fp32 {100 * accuracy['drop_vs_fp32']:+.2f} points")
        yield f"backbone + head: {onnx['macs_per_image']:,} MACs per image, providers {', '.join(onnx['providers'])}"


@run_cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name_paths_of(args)  # stored paths are read only when named here (lorsp.stored_paths)
    manifest = export(args.target, args.checkpoint, args.out, **target_options(args))
    for line in summary_lines(manifest):
        print(line)
    print(f"{args.target} bundle -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
