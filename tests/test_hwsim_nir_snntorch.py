"""lorsp-hwsim's graph interpreter against snnTorch's own simulation, on graphs snnTorch exported.

Each network is built in snnTorch 1.0.0 (randomly initialised, weights scaled so that every
layer spikes), exported with ``snntorch.export_nir.export_to_nir``, written with ``nir.write``
and read back from the file; the interpreter's spikes of every neuron node must equal
snnTorch's, step by step, sample by sample. Neurons use NIR's reset (``reset_mechanism="zero",
reset_delay=False``: the file carries ``v_reset = 0`` and no reset mechanism); the last two
tests pin down which of snnTorch's other resets are another model (docs/hwsim-nir.md), and the
``RSynaptic`` tests that snnTorch 1.0.0's ``RSynaptic`` is one too, whatever its settings.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir
from torch import nn

from deploy.nir_graph import flat_graph
from hw_sim.graph.runner import compile_graph, run_graph

T, N = 25, 6
ZERO = {"reset_mechanism": "zero", "reset_delay": False}


def per_neuron(n, low, high, gen):
    return low + (high - low) * torch.rand(n, generator=gen)


def exported(tmp_path, net: nn.Module, sample: torch.Tensor):
    """The compiled graph of ``net`` as snnTorch exports it, through a file."""
    path = tmp_path / "net.nir"
    nir.write(path, export_to_nir(net, sample, ignore_dims=[0]))
    return compile_graph(flat_graph(nir.read(path)), dt=1e-4)


def spikes_in(shape, rate=0.35, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((T, N, *shape), generator=gen) < rate).float()


class FeedForward(nn.Module):
    """Linear -> Leaky -> Linear -> Synaptic -> Linear (no bias) -> Leaky, per-neuron beta/alpha/threshold."""

    def __init__(self, gen, reset: dict = ZERO):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(12, 20), nn.Linear(20, 16), nn.Linear(16, 5, bias=False)
        self.lif1 = snn.Leaky(beta=per_neuron(20, 0.5, 0.95, gen), threshold=per_neuron(20, 0.5, 1.5, gen), **reset)
        self.lif2 = snn.Synaptic(alpha=per_neuron(16, 0.2, 0.9, gen), beta=per_neuron(16, 0.5, 0.95, gen),
                                 threshold=per_neuron(16, 0.5, 1.5, gen), **reset)
        self.lif3 = snn.Leaky(beta=per_neuron(5, 0.5, 0.95, gen), threshold=torch.ones(5), **reset)
        with torch.no_grad():
            for fc in (self.fc1, self.fc2, self.fc3):
                fc.weight.mul_(3.0)

    def forward(self, x):  # only for the export's trace
        s1, _ = self.lif1(self.fc1(x))
        s2, _, _ = self.lif2(self.fc2(s1))
        s3, _ = self.lif3(self.fc3(s2))
        return s3

    @torch.no_grad()
    def simulate(self, x):
        m1, (syn2, m2), m3 = self.lif1.init_leaky(), self.lif2.init_synaptic(), self.lif3.init_leaky()
        out = {"lif1": [], "lif2": [], "lif3": []}
        for t in range(x.shape[0]):
            s1, m1 = self.lif1(self.fc1(x[t]), m1)
            s2, syn2, m2 = self.lif2(self.fc2(s1), syn2, m2)
            s3, m3 = self.lif3(self.fc3(s2), m3)
            for k, v in zip(out, (s1, s2, s3)):
                out[k].append(v)
        return {k: torch.stack(v).numpy() for k, v in out.items()}


class Recurrent(nn.Module):
    """Linear -> RLeaky (all to all) -> Linear -> RLeaky (one weight per neuron, ``all_to_all=False``).

    ``RSynaptic`` is another model (:class:`RecurrentSynaptic`, below)."""

    def __init__(self, gen):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(10, 24), nn.Linear(24, 8)
        self.rec1 = snn.RLeaky(beta=torch.full((24,), 0.85), threshold=torch.ones(24), linear_features=24, **ZERO)
        self.rec2 = snn.RLeaky(beta=torch.full((8,), 0.8), threshold=torch.ones(8), all_to_all=False,
                               V=per_neuron(8, -0.5, 0.5, gen), **ZERO)
        with torch.no_grad():
            self.fc1.weight.mul_(2.5)
            self.fc2.weight.mul_(2.5)

    def forward(self, x):
        s1, _ = self.rec1(self.fc1(x))
        s2, _ = self.rec2(self.fc2(s1))
        return s2

    @torch.no_grad()
    def simulate(self, x):
        s1, m1 = self.rec1.init_rleaky()
        s2, m2 = self.rec2.init_rleaky()
        out = {"rec1.lif": [], "rec2.lif": []}
        for t in range(x.shape[0]):
            s1, m1 = self.rec1(self.fc1(x[t]), s1, m1)
            s2, m2 = self.rec2(self.fc2(s1), s2, m2)
            out["rec1.lif"].append(s1)
            out["rec2.lif"].append(s2)
        return {k: torch.stack(v).numpy() for k, v in out.items()}


class RecurrentSynaptic(nn.Module):
    """Linear -> RSynaptic (all to all) -> Linear -> RSynaptic (one weight per neuron, ``all_to_all=False``).

    snnTorch 1.0.0's ``RSynaptic.forward`` with ``reset_delay=False`` reads its ``spk`` argument as a tensor of
    the input's shape (``spk / graded_spikes_factor - reset``): called with the input alone, as ``RLeaky`` is, it
    raises, so every call here passes zero states of that shape (:func:`rsynaptic_states`)."""

    def __init__(self, gen, reset: dict = ZERO):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(10, 24), nn.Linear(24, 8)
        self.rec1 = snn.RSynaptic(alpha=torch.full((24,), 0.6), beta=torch.full((24,), 0.85),
                                  threshold=torch.ones(24), linear_features=24, **reset)
        self.rec2 = snn.RSynaptic(alpha=torch.full((8,), 0.5), beta=torch.full((8,), 0.8), threshold=torch.ones(8),
                                  all_to_all=False, V=per_neuron(8, -0.5, 0.5, gen), **reset)
        with torch.no_grad():
            self.fc1.weight.mul_(1.5)
            self.fc2.weight.mul_(1.5)

    def forward(self, x):  # only for the export's trace
        h = self.fc1(x)
        s1, _, _ = self.rec1(h, *rsynaptic_states(h))
        h = self.fc2(s1)
        s2, _, _ = self.rec2(h, *rsynaptic_states(h))
        return s2

    @torch.no_grad()
    def simulate(self, x):
        states = [rsynaptic_states(torch.zeros(x.shape[1], 24)), rsynaptic_states(torch.zeros(x.shape[1], 8))]
        out = {"rec1.lif": [], "rec2.lif": []}
        for t in range(x.shape[0]):
            h = x[t]
            for k, (fc, rec) in enumerate(((self.fc1, self.rec1), (self.fc2, self.rec2))):
                states[k] = rec(fc(h), *states[k])
                h = states[k][0]
                out[f"rec{k + 1}.lif"].append(h)
        return {k: torch.stack(v).numpy() for k, v in out.items()}


def rsynaptic_states(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(spk, syn, mem)`` at rest, of the shape of ``h``."""
    return torch.zeros_like(h), torch.zeros_like(h), torch.zeros_like(h)


@torch.no_grad()
def rsynaptic_loop(net: RecurrentSynaptic, x: torch.Tensor, late: bool) -> dict[str, np.ndarray]:
    """``RSynaptic``'s update in snnTorch's order, written out: ``i = alpha i + x + rec(s)``, ``v = beta v + i``,
    ``s = [v - theta > 0]``, with ``v`` set to 0 in the step of the spike (``late=False``: NIR's ``CubaLIF``) or,
    ``late=True``, the next step's new ``v`` set to 0 instead (what ``reset_mechanism="zero"`` does)."""
    out = {"rec1.lif": [], "rec2.lif": []}
    layers = ((net.fc1, net.rec1), (net.fc2, net.rec2))
    state = [[torch.zeros(x.shape[1], fc.out_features) for _ in range(3)] for fc, _ in layers]
    for t in range(x.shape[0]):
        h = x[t]
        for k, (fc, rec) in enumerate(layers):
            s, i, v = state[k]
            i = rec.alpha.clamp(0, 1) * i + fc(h) + rec.recurrent(s)
            v = rec.beta.clamp(0, 1) * v + i
            if late:
                v = torch.where(s > 0, torch.zeros_like(v), v)
            s = (v - rec.threshold > 0).float()
            if not late:
                v = torch.where(s > 0, torch.zeros_like(v), v)
            state[k], h = [s, i, v], s
            out[f"rec{k + 1}.lif"].append(s)
    return {k: torch.stack(v).numpy() for k, v in out.items()}


def conv_net(gen):
    """Conv2d -> Leaky (per-neuron (C, H, W)) -> AvgPool2d -> Flatten -> Linear -> Leaky, as nn.Sequential."""
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), snn.Leaky(beta=0.5 + 0.45 * torch.rand(4, 8, 8, generator=gen),
                                                 threshold=torch.ones(4, 8, 8), init_hidden=True, **ZERO),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 6),
        snn.Leaky(beta=torch.full((6,), 0.8), threshold=torch.ones(6), init_hidden=True, output=True, **ZERO))
    with torch.no_grad():
        net[4].weight.mul_(6.0)
    return net


def assert_same(run, reference):
    for name, spikes in reference.items():
        assert spikes.sum() > 0, f"{name} never spikes: the comparison would prove nothing"
        got = run.outputs[name]
        assert got.shape == spikes.shape, name
        mismatch = np.argwhere(got != spikes)
        assert mismatch.size == 0, f"{name}: first difference at (t, n, ...) = {mismatch[0].tolist()}"


def test_feed_forward_leaky_and_synaptic_match_snntorch_step_by_step(tmp_path):
    gen = torch.Generator().manual_seed(1)
    net = FeedForward(gen)
    compiled = exported(tmp_path, net, torch.zeros(1, 12))
    assert {c.name: c.node.kind for c in compiled.nodes if c.node.is_neuron} == \
        {"lif1": "LIF", "lif2": "CubaLIF", "lif3": "LIF"}
    x = spikes_in((12,))
    run = run_graph(compiled, x.numpy(), record=["lif1", "lif2", "lif3"])
    assert_same(run, net.simulate(x))


def test_recurrent_rleaky_sub_graphs_match_snntorch_step_by_step(tmp_path):
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    net = Recurrent(gen)
    compiled = exported(tmp_path, net, torch.zeros(1, 10))
    lif = compiled["rec1.lif"]
    assert lif.node.inputs == ("fc1", "rec1.w_rec") and compiled["rec1.w_rec"].node.recurrent == ("rec1.lif",)
    x = spikes_in((10,))
    run = run_graph(compiled, x.numpy(), record=["rec1.lif", "rec2.lif"])
    assert_same(run, net.simulate(x))


def test_rsynaptic_exports_nirs_cubalif_loop_but_snntorch_resets_it_a_step_late(tmp_path):
    """The file is NIR's ``CubaLIF`` with its recurrent weights, and lorsp runs it exactly (against the update
    written out); snnTorch 1.0.0's ``RSynaptic`` runs the same update with the reset one step late, whatever
    ``reset_delay`` says (``rsynaptic.py`` resets a local ``mem`` it never returns), so their spikes part after
    the first spike. The file cannot say which: both settings export the same graph."""
    gen = torch.Generator().manual_seed(6)
    torch.manual_seed(6)
    net = RecurrentSynaptic(gen)
    compiled = exported(tmp_path, net, torch.zeros(1, 10))
    assert {c.name: (c.node.kind, c.node.inputs, c.node.recurrent) for c in compiled.nodes if "rec" in c.name} == {
        "rec1.w_rec": ("Affine", (), ("rec1.lif",)), "rec1.lif": ("CubaLIF", ("fc1", "rec1.w_rec"), ()),
        "rec2.w_rec": ("Linear", (), ("rec2.lif",)), "rec2.lif": ("CubaLIF", ("fc2", "rec2.w_rec"), ())}
    x = spikes_in((10,))
    run = run_graph(compiled, x.numpy(), record=["rec1.lif", "rec2.lif"])
    assert_same(run, rsynaptic_loop(net, x, late=False))
    reference = net.simulate(x)
    late = rsynaptic_loop(net, x, late=True)
    for name in reference:
        assert np.array_equal(reference[name], late[name]), name
    first = int(np.argwhere(reference["rec1.lif"].any(axis=(1, 2)))[0, 0])  # the first step with a spike
    for name in reference:
        assert np.array_equal(run.outputs[name][:first + 1], reference[name][:first + 1]), name
        assert not np.array_equal(run.outputs[name], reference[name]), name
    delayed = RecurrentSynaptic(torch.Generator().manual_seed(6), {"reset_mechanism": "zero", "reset_delay": True})
    delayed.load_state_dict(net.state_dict())
    for name, spikes in delayed.simulate(x).items():
        assert np.array_equal(spikes, reference[name]), name
    nir.write(tmp_path / "delayed.nir", export_to_nir(delayed, torch.zeros(1, 10), ignore_dims=[0]))
    first_file, second_file = nir.read(tmp_path / "net.nir"), nir.read(tmp_path / "delayed.nir")
    for sub in ("rec1", "rec2"):
        a, b = first_file.nodes[f"{sub}.lif"], second_file.nodes[f"{sub}.lif"]
        for key in ("tau_syn", "tau_mem", "r", "w_in", "v_threshold", "v_leak", "v_reset"):
            assert np.array_equal(getattr(a, key), getattr(b, key)), (sub, key)


def test_rsynaptic_without_reset_delay_raises_unless_given_states_of_the_input_shape():
    """What the RLeaky tests do (call with the input alone, or with ``init_rsynaptic()``'s states) fails for
    snnTorch 1.0.0's ``RSynaptic(reset_delay=False)``, in its own forward and so in ``export_to_nir``'s trace."""
    h = torch.rand(1, 8)

    def rec():
        return snn.RSynaptic(alpha=0.5, beta=0.8, all_to_all=False, V=torch.ones(8), **ZERO)

    with pytest.raises(TypeError):
        rec()(h)
    fresh = rec()
    with pytest.raises(RuntimeError, match="size of tensor"):
        fresh(h, *fresh.init_rsynaptic())
    assert len(rec()(h, *rsynaptic_states(h))) == 3  # states of the input's shape: it runs

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.rec = nn.Linear(4, 8), rec()

        def forward(self, x):
            return self.rec(self.fc(x))[0]

    with pytest.raises(ValueError, match="empty graph"):
        export_to_nir(Plain(), torch.zeros(1, 4), ignore_dims=[0])


def test_convolutional_net_matches_snntorch_step_by_step(tmp_path):
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    net = conv_net(gen)
    compiled = exported(tmp_path, net, torch.zeros(1, 2, 8, 8))
    assert sorted(c.node.kind for c in compiled.nodes) == ["Affine", "AvgPool2d", "Conv2d", "Flatten", "Input",
                                                           "LIF", "LIF", "Output"]
    x = spikes_in((2, 8, 8), rate=0.3)
    snn_utils.reset(net)
    hidden, out = [], []
    with torch.no_grad():
        for t in range(T):
            h = net[1](net[0](x[t]))
            s, _ = net[5](net[4](net[3](net[2](h))))
            hidden.append(h)
            out.append(s)
    run = run_graph(compiled, x.numpy(), record=["1", "5"])
    assert_same(run, {"1": torch.stack(hidden).numpy(), "5": torch.stack(out).numpy()})
    # the convolution runs as one: its synapses are the kernel's connections, not a dense 128 x 256 matrix
    from hw_sim.graph.counts import connections
    assert connections(compiled)["0"] < 2 * 8 * 8 * 4 * 9


def test_snntorch_default_reset_is_another_model(tmp_path):
    """snnTorch's default reset (by subtraction, one step late) is not NIR's, and the file cannot say so."""
    net = FeedForward(torch.Generator().manual_seed(4), {"reset_mechanism": "subtract", "reset_delay": True})
    compiled = exported(tmp_path, net, torch.zeros(1, 12))
    x = spikes_in((12,), rate=0.6)
    assert not np.array_equal(run_graph(compiled, x.numpy(), record=["lif1"]).outputs["lif1"],
                              net.simulate(x)["lif1"])


def test_delayed_zero_reset_matches_for_leaky_not_for_synaptic(tmp_path):
    """``reset_mechanism="zero"`` with snnTorch's default ``reset_delay=True``: a ``Leaky`` zeroes the voltage
    before the next update (NIR's model), a ``Synaptic`` zeroes the next step's new voltage (another model)."""
    net = FeedForward(torch.Generator().manual_seed(5), {"reset_mechanism": "zero", "reset_delay": True})
    compiled = exported(tmp_path, net, torch.zeros(1, 12))
    x = spikes_in((12,), rate=0.6)
    run, reference = run_graph(compiled, x.numpy(), record=["lif1", "lif2"]), net.simulate(x)
    assert_same(run, {"lif1": reference["lif1"]})
    assert not np.array_equal(run.outputs["lif2"], reference["lif2"])
