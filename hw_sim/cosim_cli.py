"""``lorsp-cosim``: run an exported bundle's deployment split on real images and report it.

    lorsp-cosim DIR --dataset sklearn-digits --split test --limit 256 --backend fast --mode fixed --precision fp32

``DIR`` is a ``lorsp-export --target all`` directory. Every file is checked against
``manifest.json`` before anything runs. ``OUT`` (default ``DIR/cosim``) is claimed before the run
(:mod:`lorsp.plumbing.publish`), staged and renamed when complete: ``cosim.json``, ``cosim.md``, ``cosim.html`` and
PNG figures, and ``cosim_images.safetensors`` (:mod:`hw_sim.cosim_images`: per image its
index in the dataset, label, both predictions, logits, gates and a digest of the prompted image).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from deploy.onnx_runtime import PRECISIONS
from hw_sim.backends import MODES
from deploy.bundle import MANIFEST_FILE, open_bundle
from deploy.outputs import COSIM_DIR
from hw_sim.cli import add_run_options, registries_epilog
from hw_sim.cosim import DEFAULT_BATCH, DEFAULT_CHIP_TABLE, backbone_file, chip_tables, cosimulate_images
from hw_sim.cosim_images import IMAGES_FILE, write_images
from hw_sim.cosim_report import agreement_line, energy_line, latency_line, write_cosim_report
from lorsp.data import SPLITS
from lorsp.plumbing.cli import run_cli
from lorsp.plumbing.cli_options import OptionParser, count
from lorsp.data import dataset_paths, list_datasets
from lorsp.plumbing.publish import claim_output
from lorsp.stored_paths import name_paths_of

DEFAULT_OUT = COSIM_DIR


def build_parser() -> argparse.ArgumentParser:
    p = OptionParser(prog="lorsp-cosim", description=__doc__.splitlines()[0],
                     epilog=registries_epilog(), formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bundle", metavar="DIR", help="directory written by lorsp-export --target all")
    p.add_argument("--dataset", default=None,
                   help=f"images from ({', '.join(list_datasets())}); default: the model's dataset")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--limit", type=count(), default=64, help="N: the first N images of the split")
    p.add_argument("--mode", default="fixed", choices=MODES,
                   help="fixed: bit-accurate Loihi integers (what the chip computes); float: the float model")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="which ONNX file runs the backbone")
    p.add_argument("--chip-table", default=DEFAULT_CHIP_TABLE, choices=chip_tables(),
                   help="energy table that prices the generator")
    p.add_argument("--batch-size", type=count(maximum=65_536), default=DEFAULT_BATCH,
                   help="images per pass through the stages")
    p.add_argument("-o", "--out", default=None, help=f"report directory to create; default: DIR/{DEFAULT_OUT}")
    add_run_options(p, "the simulator that plays the chip")
    return p


@run_cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name_paths_of(args)  # stored paths are read only when named here (lorsp.stored_paths)
    bundle = open_bundle(args.bundle)
    out = args.out or Path(args.bundle) / DEFAULT_OUT
    protected = [*(bundle.root / name for name in (*bundle.manifest["artifacts"], MANIFEST_FILE)),
                 *dataset_paths(args.dataset or bundle.config.get("dataset", ""), bundle.config.get("data_root"))]
    with claim_output(out, args.force, sources=protected) as claim:  # may lie in DIR, never over its files
        backbone_file(bundle, args.precision)
        print(f"verified {len(bundle.manifest['artifacts'])} files of {bundle.root} against {MANIFEST_FILE}")
        report, arrays = cosimulate_images(bundle, dataset=args.dataset, split=args.split, limit=args.limit,
                                           backend=args.backend, mode=args.mode, precision=args.precision,
                                           timeout=args.timeout, batch_size=args.batch_size,
                                           chip_table=args.chip_table, progress=not args.quiet)
        with claim.staged() as stage:
            write_cosim_report(report, stage)
            write_images(arrays, report["per_image"]["metadata"], stage)
    for line in (agreement_line(report), energy_line(report), latency_line(report)):
        print(line)
    print(f"report -> {out}/cosim.html, per image -> {out}/{IMAGES_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
