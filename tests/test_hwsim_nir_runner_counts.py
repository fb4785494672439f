"""The graph runner's synaptic-pair counts and their kind (AC or MAC) where an input is graded or fed back.

A synapse node counts, per sample, the pairs of a nonzero input and a nonzero weight, and is an AC
(``binary_input``) only while every input it saw was 0 or 1: whether that input is the graph's own or
another node's, in whichever chunk of samples and block of steps it comes. A node fed back by a
recurrent edge counts the previous step's spikes. References are numpy sums over the input's
nonzero mask; weights in eighths, so float32 sums are exact.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest

from deploy.nir_graph import flat_graph
from hw_sim.graph.runner import compile_graph, run_graph

DT = 1e-4
T, N = 9, 7


def weights(n_out: int, n_in: int, seed: int = 0) -> np.ndarray:
    w = (np.random.default_rng(seed).integers(-6, 12, size=(n_out, n_in)) / 8).astype(np.float32)
    w[0, 0] = 0.0  # a zero weight: no synapse, no pair
    return w


def lif(n: int) -> nir.LIF:
    one = np.ones(n, np.float32)
    return nir.LIF(tau=2 * DT * one, r=one, v_leak=0 * one, v_threshold=one, v_reset=0 * one)


def chain() -> nir.NIRGraph:
    """in -> w1 -> lif -> pool-like Scale (graded: halves the spikes) -> w2 -> out."""
    nodes = {"in": nir.Input(np.array([3])), "w1": nir.Linear(weights(4, 3)), "lif": lif(4),
             "half": nir.Scale(np.full(4, 0.5, np.float32)), "w2": nir.Linear(weights(2, 4, 1)),
             "out": nir.Output(np.array([2]))}
    edges = [("in", "w1"), ("w1", "lif"), ("lif", "half"), ("half", "w2"), ("w2", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def pairs(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per sample, the (nonzero input, nonzero weight) pairs over all steps of ``x`` ``(T, N, n_in)``."""
    return ((x != 0).astype(np.float64) @ (w != 0).T.astype(np.float64)).sum((0, 2))


@pytest.mark.parametrize("graded_sample", [None, 0, N - 1])
def test_graded_graph_input_makes_its_synapses_macs_in_whichever_chunk_it_comes(graded_sample):
    x = (np.random.default_rng(2).random((T, N, 3)) < 0.5).astype(np.float32)
    if graded_sample is not None:
        x[T - 1, graded_sample, 1] = 0.25  # one value in the last step of one sample
        x[0, graded_sample, 2] = -0.0  # a zero however signed is 0 and counts nothing
    compiled = compile_graph(flat_graph(chain()), DT)
    for chunk, block in ((None, None), (3, 2), (1, 1)):
        run = run_graph(compiled, x, record=["lif"], chunk=chunk, block=block)
        assert run.stats["w1"].binary_input == (graded_sample is None), (chunk, block)
        assert np.array_equal(run.stats["w1"].pairs, pairs(x, weights(4, 3)))
        assert not run.stats["w2"].binary_input  # it takes halved spikes: 0.5
        spikes = run.outputs["lif"]
        assert 0 < spikes.sum() < spikes.size and np.array_equal(run.stats["w2"].pairs, pairs(spikes, weights(2, 4, 1)))


def test_a_fed_back_node_counts_the_previous_steps_spikes_in_every_block():
    nodes = {"in": nir.Input(np.array([3])), "w": nir.Linear(weights(4, 3)), "lif": lif(4),
             "rec": nir.Linear(weights(4, 4, 2)), "out": nir.Output(np.array([4]))}
    edges = [("in", "w"), ("w", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")]
    compiled = compile_graph(flat_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)), DT)
    x = (np.random.default_rng(3).random((T, N, 3)) < 0.6).astype(np.float32)
    for block in (1, 2, 4, T):
        run = run_graph(compiled, x, record=["lif"], chunk=4, block=block)
        spikes = run.outputs["lif"]
        late = np.concatenate([np.zeros_like(spikes[:1]), spikes[:-1]])
        assert spikes.sum() > 0 and np.array_equal(run.stats["rec"].pairs, pairs(late, weights(4, 4, 2))), block
        assert run.stats["rec"].binary_input and run.stats["lif"].spikes.sum() == spikes.sum()
