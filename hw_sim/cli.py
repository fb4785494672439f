"""``lorsp-hwsim``: simulate an exported Loihi bundle on test images and write its report.

    lorsp-hwsim DIR --samples 64 --mode both --backend fast -o OUT
    lorsp-hwsim MODEL.nir --input random:0.1 --steps 100 -o OUT     # any NIR graph: hw_sim.graph.cli

``OUT`` is claimed before the simulation (:mod:`lorsp.plumbing.publish`), staged and renamed when complete (``report.json``,
``report.md``, ``report.html``, PNG figures). ``--help`` lists the backends and the
energy tables from their registries; the ``lava`` backend imports Lava only when chosen.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.bundle import open_bundle
from hw_sim import energy
from hw_sim.backends import MODES, default_backend, get_backend, list_backends
from hw_sim.graph.cli import build_graph_parser, main_graph
from hw_sim.reports import write_bundle_report
from hw_sim.simulate import simulate
from lorsp.plumbing.cli import run_cli
from lorsp.plumbing.cli_options import OptionParser, count, seconds
from lorsp.data import dataset_paths, list_datasets
from lorsp.plumbing.publish import claim_output
from lorsp.stored_paths import add_path_flags, name_paths_of

MODE_CHOICES = (*MODES, "both")
DEFAULT_TIMEOUT_S = 600.0


def registries_epilog() -> str:
    """The backends and energy tables, as registered, for the end of a ``--help``."""
    return (f"backends: {', '.join(list_backends())}. "
            f"energy tables: {', '.join(energy.list_tables())}.")


def add_run_options(p: argparse.ArgumentParser, backend_help: str) -> None:
    """The options every simulator command shares: --backend, --force, --timeout, --quiet, --weights, --data-root."""
    p.add_argument("--backend", default=default_backend(), choices=list_backends(), help=backend_help)
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--timeout", type=seconds(), default=DEFAULT_TIMEOUT_S, help="seconds allowed per simulator run (lorsp-cosim: and per run of the ONNX backbone on a batch)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_path_flags(p)


def modes_of(choice: str) -> tuple[str, ...]:
    return MODES if choice == "both" else (choice,)


def build_parser() -> argparse.ArgumentParser:
    p = OptionParser(prog="lorsp-hwsim", description=__doc__.splitlines()[0],
                     epilog=registries_epilog(), formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bundle", metavar="DIR", help="directory written by lorsp-export --target loihi (or a NIR "
                   "graph file: `lorsp-hwsim MODEL.nir --help`)")
    p.add_argument("--dataset", default=None,
                   help=f"test images from ({', '.join(list_datasets())}); default: the model's dataset")
    p.add_argument("--samples", type=count(), default=64, help="N: the first N images of the test split")
    p.add_argument("--mode", default="both", choices=MODE_CHOICES,
                   help="float: Lava's float models; fixed: bit-accurate Loihi integers; both")
    p.add_argument("-o", "--out", required=True, help="report directory to create")
    add_run_options(p, "fast: batched numpy, spike-identical to lava; lava: lava-nc itself (the reference)")
    return p


def graph_file_given(argv: list[str]) -> bool:
    """Whether the positional argument names a file (a NIR graph), not a bundle directory.

    The value of every option that takes one is skipped, so ``--input spikes.npz`` is never taken for it.
    """
    takes_value = {o for p in (build_parser(), build_graph_parser()) for a in p._actions if a.nargs != 0
                   for o in a.option_strings}
    args = iter(argv)
    for token in args:
        if token in takes_value:
            next(args, None)
        elif not token.startswith("-"):
            return not Path(token).is_dir() and (Path(token).exists() or token.endswith(".nir"))
    return False


@run_cli
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if graph_file_given(argv):
        return main_graph(argv)
    args = build_parser().parse_args(argv)
    name_paths_of(args)  # stored paths are read only when named here (lorsp.stored_paths)
    get_backend(args.backend)  # a backend that cannot load (lava without Lava) is refused before any work
    out = args.out
    bundle = open_bundle(args.bundle)
    images = dataset_paths(args.dataset or bundle.config.get("dataset", ""), bundle.config.get("data_root"))
    with claim_output(out, args.force, sources=[args.bundle, *images]) as claim:  # checked and locked first
        report = simulate(bundle, dataset=args.dataset, samples=args.samples, modes=modes_of(args.mode),
                          backend=args.backend, timeout=args.timeout, progress=not args.quiet)
        with claim.staged() as stage:
            write_bundle_report(report, stage)
    for mode, run in report["runs"].items():
        f, a = run["fidelity"], run["activity"]
        print(f"{mode}: spike agreement {100 * f['spikes']['overall']:.2f}%  accuracy {f['accuracy_chip']:.4f} "
              f"(PyTorch {f['accuracy_pytorch']:.4f})  spikes/img {sum(a['spikes_per_image']):.1f}  "
              f"synops/img {a['synops_total_per_image']:.0f}  {run['performance']['images_per_s']:.1f} img/s")
    print(f"report -> {out}/report.html")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
