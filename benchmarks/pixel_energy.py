r"""Energy per image of pixel gating's gate neurons on each data set, against the same network run densely.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pixel_energy.py \
        runs/main/*/lorsp-gate-pixel_rank-8_*_sparsity-target-0.55_*/seed0/model.pt \
        --samples 64 --out runs/pixel-energy --table-name pixel-energy

For every pixel-gated checkpoint: ``examples/nir_pixel_gates.py`` (its gates as a NIR graph, run by
``lorsp-hwsim MODEL.nir --mode both`` on the first ``--samples`` test images, float and fixed point checked
against PyTorch's gate spikes), then the float run's counts and energy per image by every table of
:mod:`hw_sim.energy`. Beside them, the break-even point on Davies et al.'s table: with the neuron updates
as they are, the chip costs at most the dense fp32 network while its synaptic operations stay below

.. math::

    \text{synop}^{*} = \frac{E_{\text{fp32}} - E_{\text{updates}} - E_{\text{packets}}}{e_{\text{synop}}}

per image, i.e. an input spike rate below ``r* = r synop* / synop`` (``r`` the measured rate: input
spikes over ``T`` times the inputs). A dense network pays one MAC per synapse and step whether the input
spiked or not; the chip pays per spike but also 52-81 pJ per neuron and step, so the chip wins only where
the input is sparse enough to pay for its neuron updates.

Writes ``OUT/NAME.json`` and ``OUT/NAME.md``; each graph's own report stays in ``OUT/<dataset>-seed<k>/``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.output import fail, run_record, write_tables  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402

CHIP_TABLE = "loihi-davies2018"
DENSE_TABLES = ("horowitz-fp32-dense", "horowitz-int8-dense")


def example():
    """``examples/nir_pixel_gates.py`` as a module (its :func:`run`)."""
    spec = importlib.util.spec_from_file_location("nir_pixel_gates", ROOT / "examples" / "nir_pixel_gates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(summary: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """One data set's figures from the example's summary and the graph report (its float run)."""
    totals = {e["table"]: e["total_nj"] for e in report["energy"]}
    lines = {e["table"]: {line["operation"]: line for line in e["lines"]} for e in report["energy"]}
    chip = lines[CHIP_TABLE]
    conv = next(n for n in report["nodes"] if n["kind"].startswith("Conv"))
    inputs = 1
    for side in report["graph"]["input_shape"]:
        inputs *= int(side)
    steps = summary["steps"]
    input_rate = report["input"]["nonzero_per_sample"] / (steps * inputs)
    updates_pj = sum(line["pj"] for op, line in chip.items() if op != "synop")
    synop_pj = chip["synop"]["pj_each"]
    synops = chip["synop"]["count"]
    break_even = max(0.0, (1e3 * totals["horowitz-fp32-dense"] - updates_pj) / synop_pj)
    return {"dataset": summary["dataset"], "checkpoint": summary["checkpoint"], "samples": summary["samples"],
            "steps": steps, "inputs": inputs, "synapses": conv["synapses"],
            "float_equal_pytorch": summary["float_equal_pytorch"], "fixed_equal_pytorch": summary["fixed_equal_pytorch"],
            "input_spike_rate": input_rate, "synops_per_image": synops,
            "neuron_updates_per_image": chip["neuron_update_active"]["count"] + chip["neuron_update_inactive"]["count"],
            "active_neuron_updates_per_image": chip["neuron_update_active"]["count"],
            "energy_nj": totals,
            "chip_over_dense_fp32": totals[CHIP_TABLE] / totals["horowitz-fp32-dense"],
            "break_even_synops_per_image": break_even,
            "break_even_input_spike_rate": input_rate * break_even / synops if synops else None}


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    """The table of :func:`row` per data set, for people."""
    out = ["# Pixel gating: energy per image of the gate neurons", "",
           f"Command: `{command}`. Float run of `lorsp-hwsim MODEL.nir` (fast backend); nJ per image; "
           f"chip: {CHIP_TABLE}; dense: the same network, every synapse and neuron every step (Horowitz 2014). "
           "Break-even: the input spike rate below which the chip costs at most the dense fp32 network, "
           "with the neuron updates as they are.", "",
           "| data set | input spike rate | synops | neuron updates (active) | Loihi (Davies) | Loihi (SANA-FE) | "
           "dense fp32 | dense int8 | Loihi / fp32 | break-even rate | exact (float, fixed) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["energy_nj"]
        rate = r["break_even_input_spike_rate"]
        out.append(f"| {r['dataset']} | {100 * r['input_spike_rate']:.1f}% | {r['synops_per_image']:,.0f} | "
                   f"{r['neuron_updates_per_image']:,.0f} ({r['active_neuron_updates_per_image']:,.0f}) | "
                   f"{e[CHIP_TABLE]:,.0f} | {e['loihi-sanafe']:,.0f} | {e['horowitz-fp32-dense']:,.0f} | "
                   f"{e['horowitz-int8-dense']:,.0f} | {r['chip_over_dense_fp32']:.2f} | "
                   f"{'-' if rate is None else f'{100 * rate:.1f}%'} | "
                   f"{r['float_equal_pytorch']}, {r['fixed_equal_pytorch']} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", help="pixel-gated LoRSP checkpoints (model.pt), one per data set")
    p.add_argument("--samples", type=int, default=64, help="test images per checkpoint")
    p.add_argument("--out", required=True, help="directory for the per-graph reports and the table")
    p.add_argument("--table-name", default="pixel-energy")
    p.add_argument("--force", action="store_true", help="replace existing per-graph reports")
    args = p.parse_args(argv)
    if args.samples < 1:
        fail(f"--samples must be at least 1, got {args.samples}")
    run = example().run
    rows = []
    for checkpoint in args.checkpoints:
        config = json.loads((Path(checkpoint).parent / "config.json").read_text())
        folder = Path(args.out) / f"{config['dataset']}-seed{config['seed']}"
        try:
            summary = run(checkpoint, str(folder), args.samples, None, args.force)
        except LorspError as exc:
            fail(str(exc))
        rows.append(row(summary, json.loads((folder / "report" / "report.json").read_text())))
        print(f"{rows[-1]['dataset']}: Loihi / dense fp32 {rows[-1]['chip_over_dense_fp32']:.2f}", flush=True)
    command = "python benchmarks/pixel_energy.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_tables(args.out, args.table_name, run_record(args, rows=rows, command=command), markdown(rows, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
