"""``lorsp-export``: write a trained checkpoint out as files for a target.

    lorsp-export --target loihi runs/x/model.pt -o runs/x/loihi --samples 64

A target is one function ``(checkpoint, out, **options) -> manifest`` and one line in
:data:`TARGETS`.
"""
from __future__ import annotations

import argparse

from export.loihi import export_loihi
from lorsp.cli import run_cli
from lorsp.data import list_datasets

TARGETS = {"loihi": export_loihi}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lorsp-export", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", metavar="MODEL.pt", help="a lorsp checkpoint (lorsp-train's model.pt)")
    p.add_argument("--target", required=True, choices=sorted(TARGETS))
    p.add_argument("-o", "--out", required=True, help="directory to create")
    p.add_argument("--samples", type=int, default=64,
                   help="N test images for the round-trip check and the simulation")
    p.add_argument("--dataset", default=None,
                   help=f"images for the checks ({', '.join(list_datasets())}); default: the model's dataset")
    p.add_argument("--no-simulate", action="store_true", help="skip the hardware simulation and its report")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per simulator run")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


@run_cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    manifest = TARGETS[args.target](args.checkpoint, args.out, samples=args.samples,
                                    run_simulation=not args.no_simulate, force=args.force, dataset=args.dataset,
                                    timeout=args.timeout, progress=not args.quiet)
    rt = manifest["checks"]["round_trip"]
    print(f"NIR round trip: {100 * rt['agreement']:.2f}% of spikes equal on {rt['samples']} samples")
    for mode in ("float", "fixed"):
        sim = manifest.get("simulation", {}).get(mode)
        if sim:
            print(f"Lava {mode}: {100 * sim['spike_agreement']:.2f}% spikes equal to PyTorch, accuracy "
                  f"{sim['accuracy_chip']:.4f} (PyTorch {sim['accuracy_pytorch']:.4f})")
    print(f"{args.target} bundle -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
