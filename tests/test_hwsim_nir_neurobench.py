"""lorsp-hwsim's synaptic operations against NeuroBench's metric, on the same snnTorch models.

NeuroBench 2.3.0 (``neurobench.metrics.workload.SynapticOperations``) hooks every ``nn.Linear``
and ``nn.Conv1d/2d/3d`` of a model, and per forward call counts the pairs of a nonzero input and
a nonzero weight (binarised copies of both, bias excluded): ``Effective_ACs`` where the layer's
input was all 0/±1, ``Effective_MACs`` otherwise, and ``Dense`` with every input and weight set
to 1, all per sample. lorsp counts the same pairs per synapse node of the exported NIR graph
(hw_sim/graph/counts.py). Each model here is a randomly initialised snnTorch network (weights
scaled so every layer spikes), run by NeuroBench's ``Benchmark`` over a ``DataLoader`` of spike
inputs, exported with ``export_to_nir`` and run by ``simulate_graph`` (what ``lorsp-hwsim
MODEL.nir`` runs) on the same spikes. Where the two differ it is by convention, asserted exactly:

* pools: lorsp counts ``AvgPool2d``/``SumPool2d`` as synapse nodes (a chip routes each input spike
  to the pooled neuron); NeuroBench hooks no pooling layer;
* ``Dense``: NeuroBench counts zero weights too; lorsp's ``connections`` (and its dense MACs) count
  only nonzero weights, as a chip stores them;
* snnTorch's ``RLeaky`` with ``reset_mechanism="zero"`` evaluates its state function, and so its
  recurrent ``nn.Linear``, twice per step (``_base_zero``), so NeuroBench counts the recurrent
  synapses twice; lorsp counts the recurrent ``Affine`` once per step.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hw_sim.graph.simulate import simulate_graph

pytest.importorskip("neurobench")
from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.workload import SynapticOperations  # noqa: E402
from neurobench.models import SNNTorchModel  # noqa: E402

T, N, BATCH = 20, 8, 4
ZERO = {"reset_mechanism": "zero", "reset_delay": False}
WEIGHTED = ("Affine", "Linear", "Conv1d", "Conv2d")


def leaky(shape, beta, **kw):
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape), init_hidden=True, **ZERO, **kw)


def neurobench_synops(net: nn.Module, x: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """NeuroBench's SynapticOperations over ``x`` ``(T, N, ...)`` in batches, and the model's output spikes."""
    data = x.transpose(0, 1)  # NeuroBench's layout: (batch, time, ...)
    model = SNNTorchModel(net)
    bench = Benchmark(model, DataLoader(TensorDataset(data, torch.zeros(len(data))), batch_size=BATCH),
                      [], [], [[], [SynapticOperations]])
    result = bench.run(quiet=True)["SynapticOperations"]
    with torch.no_grad():
        spikes = torch.cat([model(data[i:i + BATCH]) for i in range(0, len(data), BATCH)])
    return result, spikes.transpose(0, 1)


def lorsp_report(tmp_path, net: nn.Module, sample: torch.Tensor, x: torch.Tensor):
    path = tmp_path / "net.nir"
    nir.write(path, export_to_nir(net, sample, ignore_dims=[0]))
    sim = simulate_graph(path, x.numpy(), input_spec="test spikes")
    return sim.report, sim.arrays


def synops(report: dict, kinds=WEIGHTED, synop_kind: str | None = None) -> float:
    return sum(r["synops_per_sample"]["mean"] for r in report["nodes"] if "synops_per_sample" in r
               and r["kind"] in kinds and (synop_kind is None or r["synop_kind"] == synop_kind))


def output_spikes(arrays: dict) -> np.ndarray:
    (name,) = [k for k in arrays if not k.startswith("fixed.") and arrays[k].ndim == 3]
    return arrays[name]


def test_feed_forward_conv_net_synops_equal_neurobench(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), leaky((4, 8, 8), 0.8), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(64, 20), leaky((20,), 0.9), nn.Linear(20, 5), leaky((5,), 0.9, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[4].weight.mul_(4.0)
        net[6].weight.mul_(4.0)
        net[4].weight[:, :5] = 0.0  # zero weights: no synaptic operation in either count
    x = (torch.rand(T, N, 2, 8, 8) < 0.3).float()
    nb, nb_spikes = neurobench_synops(net, x)
    report, arrays = lorsp_report(tmp_path, net, torch.zeros(1, 2, 8, 8), x)

    # the same run: NeuroBench's model and lorsp's graph give the same output spikes
    assert nb_spikes.sum() > 0
    np.testing.assert_array_equal(output_spikes(arrays), nb_spikes.numpy())
    # ACs: the conv (spike input) and the last Linear; MACs: the Linear after the average pool (graded input)
    assert synops(report, synop_kind="AC") == pytest.approx(nb["Effective_ACs"], rel=1e-12)
    assert synops(report, synop_kind="MAC") == pytest.approx(nb["Effective_MACs"], rel=1e-12)
    assert nb["Effective_ACs"] > 0 and nb["Effective_MACs"] > 0
    # lorsp also counts the pool's synapses; its total is NeuroBench's plus those
    pool = synops(report, kinds=("AvgPool2d",))
    assert pool > 0
    assert report["activity"]["synop"] == pytest.approx(nb["Effective_ACs"] + nb["Effective_MACs"] + pool, rel=1e-12)
    # Dense: NeuroBench counts the 5 x 20 zero weights, lorsp's connections do not
    weighted = sum(r["synapses"] for r in report["nodes"] if r["kind"] in WEIGHTED)
    assert nb["Dense"] == pytest.approx(T * (weighted + 5 * 20), rel=1e-12)


def test_recurrent_rleaky_synops_equal_neurobench_with_the_recurrent_layer_counted_twice(tmp_path):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(10, 24),
                        snn.RLeaky(beta=torch.full((24,), 0.85), threshold=torch.ones(24), linear_features=24,
                                   init_hidden=True, **ZERO),
                        nn.Linear(24, 5), leaky((5,), 0.9, output=True))
    with torch.no_grad():
        net[0].weight.mul_(2.5)
        net[2].weight.mul_(3.0)
    x = (torch.rand(T, N, 10) < 0.3).float()
    nb, nb_spikes = neurobench_synops(net, x)
    report, arrays = lorsp_report(tmp_path, net, torch.zeros(1, 10), x)

    np.testing.assert_array_equal(output_spikes(arrays), nb_spikes.numpy())
    rows = {r["name"]: r for r in report["nodes"]}
    recurrent = rows["1.w_rec"]["synops_per_sample"]["mean"]
    assert rows["1.w_rec"]["recurrent_inputs"] == ["1.lif"] and recurrent > 0
    # snnTorch's RLeaky (zero reset) calls its recurrent Linear twice a step
    calls = []
    handle = net[1].recurrent.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        SNNTorchModel(net)(x.transpose(0, 1))
    handle.remove()
    assert len(calls) == 2 * T
    assert nb["Effective_MACs"] == 0
    assert nb["Effective_ACs"] == pytest.approx(report["activity"]["synop"] + recurrent, rel=1e-12)
