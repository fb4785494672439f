"""A ``Conv2d`` node runs as a convolution, not as the dense matrix a chip would hold.

A 16 x 3 x 3 x 3 kernel over a 3 x 256 x 256 input (padding 1, so the output is 16 x 256 x 256)
is, multiplied out, a 1,048,576 x 196,608 matrix: 2.06e11 entries, 824 GB in float32, far beyond
this machine. The graph interpreter (:func:`hw_sim.graph.runner.compile_graph`, :func:`run_graph`)
compiles and runs it in a fresh Python process whose memory growth is measured (spawned, not forked: a
forked child of a process whose PyTorch already ran its OpenMP threads can hang in them), and its synaptic operations
per sample must equal the convolution's, counted here without any convolution: each input spike
reaches, for every nonzero kernel tap, the one output position that tap maps it to, where that
position lies inside the output (fewer at the borders), in each output channel.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import nir
import numpy as np

from deploy.nir_graph import flat_graph
from hw_sim.graph.counts import connections
from hw_sim.graph.runner import compile_graph, run_graph

ROOT = Path(__file__).resolve().parent.parent

C_IN, C_OUT, H, W, K = 3, 16, 256, 256, 3
T, N = 3, 2
MEMORY_LIMIT = 1 << 30
"""Peak memory growth allowed for compiling and running it (1 GiB; the dense matrix alone is 824 GB)."""


def kernel() -> np.ndarray:
    """Random taps, every one nonzero except a few zeroed on purpose (their pairs must not count)."""
    w = np.random.default_rng(0).normal(0.0, 0.3, (C_OUT, C_IN, K, K)).astype(np.float32)
    w[np.abs(w) < 1e-3] = 0.3
    w[2, 1, 0, 0] = w[5, :, 1, 1] = w[11, 2, 2, :] = 0.0
    return w


def conv_graph(w: np.ndarray) -> nir.NIRGraph:
    """Input (3, 256, 256) -> Conv2d (padding 1) -> LIF (16, 256, 256) -> Output."""
    out = (C_OUT, H, W)
    lif = nir.LIF(tau=np.full(out, 2e-4, np.float32), r=np.full(out, 2.0, np.float32),
                  v_leak=np.zeros(out, np.float32), v_threshold=np.ones(out, np.float32))
    return nir.NIRGraph(nodes={"in": nir.Input(np.array([C_IN, H, W])),
                               "conv": nir.Conv2d(input_shape=(H, W), weight=w, stride=1, padding=1, dilation=1,
                                                  groups=1, bias=np.zeros(C_OUT, np.float32)),
                               "lif": lif, "out": nir.Output(np.array(list(out)))},
                        edges=[("in", "conv"), ("conv", "lif"), ("lif", "out")], type_check=False)


def input_spikes() -> np.ndarray:
    return (np.random.default_rng(1).random((T, N, C_IN, H, W)) < 0.05).astype(np.float32)


def reach(w: np.ndarray) -> np.ndarray:
    """``(C_IN, H, W)``: the output neurons an input spike at each position drives through a nonzero tap.

    The convolution (cross-correlation, padding 1) gives out[o, y, x] += w[o, c, ky, kx] in[c, y + ky - 1,
    x + kx - 1]: input row ``r`` reaches output row ``r - ky + 1`` by tap row ``ky``, where that row exists."""
    rows, cols = np.arange(H), np.arange(W)
    total = np.zeros((C_IN, H, W), np.int64)
    for o, c, ky, kx in zip(*np.nonzero(w)):
        inside_y = ((rows - ky + 1 >= 0) & (rows - ky + 1 < H)).astype(np.int64)
        inside_x = ((cols - kx + 1 >= 0) & (cols - kx + 1 < W)).astype(np.int64)
        total[c] += np.outer(inside_y, inside_x)
    return total


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def compile_and_run(w: np.ndarray, x: np.ndarray) -> dict:
    """In the child: the run's synops per sample, the conv node's shapes and synapses, and the memory growth."""
    start = _rss_bytes()
    compiled = compile_graph(flat_graph(conv_graph(w)), 1e-4)
    run = run_graph(compiled, x)
    conv = compiled["conv"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"pairs": run.stats["conv"].pairs.tolist(), "spikes": run.stats["lif"].spikes.tolist(),
            "in_shape": conv.in_shape, "out_shape": conv.out_shape, "fan_out_shape": tuple(conv.fan_out.shape),
            "synapses": connections(compiled)["conv"], "growth": peak - start}


def test_a_conv2d_on_a_256_by_256_map_runs_as_a_convolution_and_counts_its_synops():
    w, x = kernel(), input_spikes()
    child = ("import json; from tests.test_hwsim_nir_conv import compile_and_run, kernel, input_spikes; "
             "print(json.dumps(compile_and_run(kernel(), input_spikes())))")
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    got["fan_out_shape"] = tuple(got["fan_out_shape"])
    got["in_shape"], got["out_shape"] = tuple(got["in_shape"]), tuple(got["out_shape"])
    assert got["in_shape"] == (C_IN, H, W) and got["out_shape"] == (C_OUT, H, W)
    assert got["fan_out_shape"] == (C_IN, H, W)  # one count per input element, not a row of a matrix
    assert got["growth"] < MEMORY_LIMIT, f"compiling and running grew memory by {got['growth'] / 2**20:.0f} MiB"
    fan = reach(w)
    assert got["synapses"] == int(fan.sum())  # the kernel's connections, borders and zero taps left out
    expected = (x * fan).reshape(T, N, -1).sum(axis=(0, 2))  # every input spike, every output it reaches
    assert expected.min() > 0 and np.array_equal(np.asarray(got["pairs"]), expected)
    assert min(got["spikes"]) > 0  # the LIF layer fires: the convolution's values reached it
