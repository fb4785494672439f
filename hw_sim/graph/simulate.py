"""A NIR graph file and its input in, a report (a plain dict) and the output arrays out.

:func:`simulate_graph` reads the graph (:func:`deploy.nir_reader.read_nir`: bounded, links
refused), flattens it (:func:`deploy.nir_graph.flat_graph`), compiles and runs it in float
(:mod:`hw_sim.graph.runner`), counts and prices its operations (:mod:`hw_sim.graph.counts`)
and checks it against each chip (:mod:`hw_sim.graph.chip_fit`). Where the graph is a chain that
lorsp's fixed-point path expresses, the fixed mode runs there and is compared node by node
(:mod:`hw_sim.graph.fixed`). :mod:`hw_sim.graph.report` writes it out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from deploy.nir_graph import flat_graph
from deploy.nir_reader import SNNTORCH_DT, read_nir
from hw_sim import energy
from hw_sim.backends.base import is_binary
from hw_sim.graph.chip_fit import CHIPS, chip_fit, list_chips
from hw_sim.graph.counts import energy_lines, graph_counts, node_rows
from hw_sim.graph.runner import CompiledGraph, GraphRun, compile_graph, run_graph
from hw_sim.stamp import provenance
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.fileio import file_sha256

REPORT_FORMAT = "lorsp-hwsim-nir-report"


@dataclass
class GraphSimulation:
    """The report dict and the arrays for ``outputs.npz``."""

    report: dict
    arrays: dict[str, np.ndarray]


def load_graph(path: str | Path, dt: float | None, cuba_input: str = "euler",
               if_input: str = "jump") -> tuple[CompiledGraph, float, str]:
    """The compiled graph of ``path``, its step and where the step came from (metadata, ``--dt``, default)."""
    graph = flat_graph(read_nir(path), source=str(path))
    step, origin = graph_dt(graph.metadata, dt, str(path))
    return compile_graph(graph, step, str(path), cuba_input, if_input), step, origin


def graph_dt(metadata: dict, given: float | None, source: str) -> tuple[float, str]:
    """``dt`` from the graph's metadata where present, else ``given``, else snnTorch's 1e-4; and which it was."""
    if "dt" in metadata:
        try:
            dt = float(np.asarray(metadata["dt"]))
        except (TypeError, ValueError):
            raise LorspError(f"{source}: the graph metadata's dt is not a number: {metadata['dt']!r}") from None
        if not dt > 0 or not np.isfinite(dt):
            raise LorspError(f"{source}: the graph metadata's dt must be positive and finite, got {dt}")
        if given is not None and given != dt:
            raise LorspError(f"{source}: the graph's metadata says dt = {dt:g}, --dt says {given:g}; leave --dt out")
        return dt, "graph metadata"
    if given is not None:
        return given, "--dt"
    return SNNTORCH_DT, "default (snnTorch's export_to_nir step, 1e-4 s; --dt to change)"


def simulate_graph(path: str | Path, x: np.ndarray, *, input_spec: str, dt: float | None = None,
                   modes: Sequence[str] = ("float",), timeout: float = 600.0, cuba_input: str = "euler",
                   if_input: str = "jump", progress: Callable[[int], None] | None = None) -> GraphSimulation:
    """Run ``x`` ``(T, N, *input_shape)`` through the graph at ``path``; the report and output arrays.

    ``cuba_input``, ``if_input``: how CubaLI/CubaLIF currents and IF/I voltages take their input
    (:data:`hw_sim.graph.neurons.CUBA_INPUTS`, :data:`hw_sim.graph.neurons.IF_INPUTS`).
    """
    compiled, step, origin = load_graph(path, dt, cuba_input, if_input)
    return simulate_compiled(compiled, x, path=path, input_spec=input_spec, dt_origin=origin, modes=modes,
                             timeout=timeout, progress=progress)


def simulate_compiled(compiled: CompiledGraph, x: np.ndarray, *, path: str | Path, input_spec: str,
                      dt_origin: str, modes: Sequence[str] = ("float",), timeout: float = 600.0,
                      progress: Callable[[int], None] | None = None, require_fixed: bool = False,
                      lava: bool = False) -> GraphSimulation:
    """:func:`simulate_graph` for a graph already compiled (the CLI compiles before it claims its output).

    ``require_fixed``: a graph the fixed-point path cannot express is an error, not a note in the report.
    ``lava``: Lava itself runs the graph too, in every mode (:mod:`hw_sim.graph.lava_check`).
    """
    shape = compiled.graph.input_shape
    if tuple(x.shape[2:]) != tuple(shape):
        raise LorspError(f"input of shape {x.shape} does not fit the graph's Input of shape {shape}")
    run = run_graph(compiled, x, timeout=timeout, progress=progress)
    binary = is_binary(x)
    input_spikes = float(np.count_nonzero(x)) / x.shape[1]
    counts = graph_counts(compiled, run, input_spikes)
    outputs = output_blocks(compiled, run)
    report = {
        "format": REPORT_FORMAT, "format_version": 1,
        "graph": {"path": str(path), "sha256": file_sha256(path), "nodes": len(compiled.nodes),
                  "edges": sum(len(c.node.inputs) + len(c.node.recurrent) for c in compiled.nodes),
                  "input_shape": list(shape), "outputs": list(compiled.graph.output_names)},
        "dt": compiled.dt, "dt_source": dt_origin,
        "input": {"spec": input_spec, "steps": run.steps, "samples": run.samples, "binary": binary,
                  "nonzero_per_sample": input_spikes},
        "modes": list(modes), "backend": "fast (graph interpreter, PyTorch float32)",
        "conventions": "docs/hwsim-nir.md: forward Euler with dt; the voltage takes this step's current; "
                       "spike when v > v_threshold, reset to v_reset in the same step; no delay per layer; "
                       f"synaptic input {compiled.cuba_input!r}"
                       + (" (i += w_in dt/tau_syn x, snnTorch)" if compiled.cuba_input == "euler"
                          else " (i += w_in x, Norse)")
                       + f"; IF input {compiled.if_input!r}"
                       + (" (v += r x, Norse, Sinabs)" if compiled.if_input == "jump"
                          else " (v += r dt x, SpikingJelly)"),
        "nodes": node_rows(compiled, run),
        "activity": counts.totals(),
        "energy": energy_lines(counts),
        "left_out": energy.left_out_io(counts.input_spikes, counts.output_spikes, "output spikes"),
        "energy_tables": {n: {"title": t.title, "source": t.source, "pj": t.pj, "note": t.note}
                          for n, t in ((n, energy.get_table(n)) for n in energy.list_tables())},
        "chip_fit": {name: chip_fit(compiled, CHIPS.get(name)) for name in list_chips()},
        "outputs": outputs,
        "runs": {"float": {"performance": {"seconds": run.seconds, "samples_per_s": run.samples / run.seconds
                                           if run.seconds > 0 else None, "steps": run.steps}}},
    }
    arrays = output_arrays(compiled, run)
    if "fixed" in modes:
        from hw_sim.graph.fixed import fixed_run  # only the fixed mode needs the chain importer
        fixed = fixed_run(compiled, x, timeout=timeout, required=require_fixed)
        report["runs"]["fixed"] = fixed.block
        arrays.update({f"fixed.{name}": values for name, values in fixed.outputs.items()})
    if lava:
        from hw_sim.graph.lava_check import lava_runs  # imports Lava on first use
        report["lava"] = lava_runs(compiled, x, modes, timeout)
    report["provenance"] = provenance()
    return GraphSimulation(report, arrays)


def output_blocks(compiled: CompiledGraph, run: GraphRun) -> dict[str, dict]:
    """What each ``Output`` node gives: spikes (with counts per sample) or voltages, read through probes."""
    out = {}
    for name in compiled.graph.output_names:
        values = run.outputs[name]
        spikes = is_binary(values)
        feeders = [compiled[a].node.kind for a in compiled.graph.node(name).inputs]
        block = {"shape": list(values.shape[2:]), "from": list(compiled.graph.node(name).inputs),
                 "kind": "spikes" if spikes else "voltage", "file": "outputs.npz", "array": name}
        if spikes:
            block["spikes_per_sample"] = float(values.sum() / values.shape[1])
        else:
            block["note"] = (f"a membrane read-out ({', '.join(feeders)}): the chip gives no spikes here; "
                             f"a host reads the voltage through probes every step")
            block["final_voltage_range"] = [float(values[-1].min()), float(values[-1].max())]
        out[name] = block
    return out


def output_arrays(compiled: CompiledGraph, run: GraphRun) -> dict[str, np.ndarray]:
    """``outputs.npz``: every ``Output`` node's ``(T, N, *shape)`` values and, summed over time, its counts
    ``(N, *shape)``; per sample ``(N,)``, every spiking node's spikes, every synapse node's synaptic operations
    and every compartment node's active neuron updates."""
    arrays = {}
    for name in compiled.graph.output_names:
        arrays[name] = run.outputs[name]
        arrays[f"{name}.counts"] = run.outputs[name].sum(0)
    for c in compiled.nodes:
        stats = run.stats[c.name]
        if c.emits_spikes:
            arrays[f"spikes_per_sample.{c.name}"] = stats.spikes
        if c.fan_out is not None:
            arrays[f"synops_per_sample.{c.name}"] = stats.pairs
        if c.is_compartment:
            arrays[f"active_updates_per_sample.{c.name}"] = stats.active_updates
    return arrays
