"""``lorsp-hwsim model.nir``: run any NIR 1.0.x graph on the simulated chip and write its report.

    lorsp-hwsim model.nir --input spikes.npz --mode both -o report/
    lorsp-hwsim model.nir --input random:0.1 --steps 100 --samples 16 -o report/

Everything is read and checked (graph, node types, shapes, input) before ``-o`` is claimed, so
a refusal is one ``error:`` line, exit 2, with nothing written; the report appears whole or
not at all (:mod:`lorsp.plumbing.publish`). docs/hwsim-nir.md says what each node computes.
"""
from __future__ import annotations

import argparse

from hw_sim.graph.chip_fit import list_chips
from hw_sim.graph.inputs import input_spec, load_input
from hw_sim.graph.neurons import CUBA_INPUTS, IF_INPUTS
from hw_sim.graph.report import write_graph_report
from hw_sim.graph.simulate import load_graph, simulate_compiled
from lorsp.plumbing.cli_options import OptionParser, count, number, seconds, seed
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.publish import claim_output

MODES = ("float", "fixed", "both")
DEFAULT_STEPS = 100


def build_graph_parser() -> argparse.ArgumentParser:
    p = OptionParser(prog="lorsp-hwsim", description=__doc__.splitlines()[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("graph", metavar="MODEL.nir", help="a NIR graph file (any framework's NIR 1.0.x)")
    p.add_argument("--input", required=True, type=input_spec, metavar="SPIKES.npz|DATA.h5|random:RATE",
                   help="(T, N, *input_shape) array in an .npz, NIR data (nir.write_data) for the Input node, "
                        "or a seeded Bernoulli train of this rate")
    p.add_argument("--steps", type=count(maximum=1_000_000), default=None,
                   help=f"T for random input (default {DEFAULT_STEPS}); an .npz gives its own")
    p.add_argument("--samples", type=count(), default=16, help="N for random input")
    p.add_argument("--seed", type=seed(), default=0, help="seed of the random input")
    p.add_argument("--dt", type=number(0.0, 1e6, above=True), default=None,
                   help="time step in s where the graph's metadata has none (default: snnTorch's 1e-4)")
    p.add_argument("--synaptic-input", default="euler", choices=CUBA_INPUTS,
                   help="how CubaLI/CubaLIF currents take input: euler, i += w_in dt/tau_syn x (NIR's ODE, "
                        "snnTorch); jump, i += w_in x (Norse)")
    p.add_argument("--if-input", default="jump", choices=IF_INPUTS,
                   help="how IF/I voltages take input: jump, v += r x (Norse, Sinabs); euler, v += r dt x "
                        "(NIR's ODE, SpikingJelly)")
    p.add_argument("--mode", default="float", choices=MODES,
                   help="float: the graph interpreter; fixed: Loihi integers (chains lorsp's fixed-point path "
                        "expresses); both: float, and fixed where it can")
    p.add_argument("--chip", default="all", choices=(*list_chips(), "all"), help="chip(s) to check the fit on")
    p.add_argument("--backend", default="fast", choices=("fast", "lava"),
                   help="fast: the graph interpreter; lava: also lava-nc itself (float: any graph its processes "
                        "express; fixed: its bit-accurate processes on the fast fixed mode's integers), compared "
                        "node by node")
    p.add_argument("-o", "--out", required=True, help="report directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--timeout", type=seconds(), default=600.0, help="seconds allowed for the run")
    p.add_argument("--quiet", action="store_true", help="print nothing but the summary")
    return p


def main_graph(argv: list[str]) -> int:
    """The graph path of ``lorsp-hwsim`` (``hw_sim.cli.main`` sends a graph file here)."""
    args = build_graph_parser().parse_args(argv)
    if args.steps is not None and not args.input.startswith("random:"):
        raise LorspError("--steps is for random input; an input file gives its own number of steps")
    compiled, _, origin = load_graph(args.graph, args.dt, args.synaptic_input, args.if_input)
    x = load_input(args.input, compiled.graph.input_shape, steps=args.steps or (
        DEFAULT_STEPS if args.input.startswith("random:") else None), samples=args.samples, seed=args.seed,
        input_name=compiled.graph.input_name, dt=compiled.dt)
    modes = ("float",) if args.mode == "float" else ("float", "fixed")  # fixed is compared with float
    if args.backend == "lava":
        from hw_sim.graph.lava_check import check_lava, check_lava_fixed  # scipy and Lava: the extra 'lava' only
        check_lava(compiled, x)  # refused in one line where Lava cannot load or express the graph
        if args.mode == "fixed":
            check_lava_fixed(compiled, x)  # likewise where Lava's fixed point cannot hold it
    inputs = [args.graph] + ([] if args.input.startswith("random:") else [args.input])
    with claim_output(args.out, args.force, sources=inputs) as claim:
        sim = simulate_compiled(compiled, x, path=args.graph, input_spec=args.input, dt_origin=origin,
                                modes=modes, timeout=args.timeout, require_fixed=args.mode == "fixed",
                                lava=args.backend == "lava")
        if args.chip != "all":
            sim.report["chip_fit"] = {args.chip: sim.report["chip_fit"][args.chip]}
            fixed_fit = sim.report["runs"].get("fixed", {}).get("chip_fit")
            if fixed_fit is not None:
                sim.report["runs"]["fixed"]["chip_fit"] = {args.chip: fixed_fit[args.chip]}
        with claim.staged() as stage:
            write_graph_report(sim, stage)
    r = sim.report
    print(f"{r['input']['samples']} samples x {r['input']['steps']} steps: "
          f"spikes/sample {r['activity']['spike']:.1f}  synops/sample {r['activity']['synop']:.0f}  "
          f"energy/sample {r['energy'][0]['total_nj']:.3g} nJ ({r['energy'][0]['title']})  "
          + "  ".join(f"{f['title']}: {f['cores_needed']} cores ({'fits' if f['fits'] else 'does not fit'})"
                      for f in r["chip_fit"].values()))
    for mode, block in r.get("lava", {}).items():
        print(f"lava {mode}: " + (f"agreement with {block['against']}: " + ", ".join(
            f"{n['node']} {100 * n['agreement']:.2f}%" for n in block["per_node"]) if block["ran"]
            else f"not run ({block['reason']})"))
    fixed = r["runs"].get("fixed")
    if fixed is not None:
        print("fixed: " + (f"spike agreement {100 * fixed['overall']:.2f}%" if fixed.get("ran")
                           else f"not run ({fixed['reason']})"))
    print(f"report -> {args.out}/report.html")
    return 0
