r"""LoRSP: Low-Rank visual Spike Prompting (our reading of arXiv 2606.01945; docs/method.md).

Per channel ``c``, low-rank prompt factors ``B_c`` (L x r) and ``A_c`` (r x L), as in
LoR-VP, whose rows and columns are gated per image by the spike rates of a small
feed-forward spiking network ``S``:

.. math::

    \rho(x) = \frac{1}{T} \sum_{t=1}^{T} S(e_t(x)) \in [0, 1]^{2G}, \qquad
    g(x) = \mathbb{1}[\rho(x) > 0] \in \{0, 1\}^{2G}

    P_c(x) = \mathrm{diag}(g^{row}(x))\, B_c A_c\, \mathrm{diag}(g^{col}(x))

``e_t(x)`` is the binary instance encoding of :mod:`lorsp.encoding` (pooled image,
integer rate code). A gate is open when its neuron fired at least once in the ``T``
steps; training passes the gradient of the rate ``rho`` straight through the step
(``g = 1[rho > 0] + rho - stopgrad(rho)``), so the surrogate gradient of the spikes
reaches the generator while the forward pass keeps LoR-VP's prompt scale on open rows. ``g^{row}`` spreads the first ``G`` gates over the ``L`` rows
(row ``i`` reads gate ``floor(i G / L)``), ``g^{col}`` the last ``G`` over columns.
Hence, for every image and channel, exactly:

* ``rank P_c(x) <= r`` (diagonal scaling cannot raise the rank);
* ``P_c(x)[i, j] = 0`` wherever row ``i``'s or column ``j``'s gate neuron stayed silent
  (exact zeros, at pixel level);
* ``P(x)`` depends on the image, and is deterministic (no noise anywhere).

``S`` is ``Linear(D, H) -> Leaky -> Linear(H, 2G) -> Leaky`` with ``D = 3 p^2``, snnTorch
``Leaky`` neurons with ``reset_mechanism="zero"``, ``reset_delay=False`` and per-neuron
``beta`` and ``threshold`` tensors: the form that survives NIR export and Lava unchanged.

Trainable parameters: ``6 L r`` (factors) ``+ (D H + H) + (2 G H + 2 G)`` (generator).

``gate="rank"`` is the ablation that gates whole rank-1 terms instead (``r`` gate
neurons per channel, ``P_c = B_c diag(g_c) A_c``): low-rank, instance-specific, but
with no pixel-level zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

from lorsp.encoding import encode
from lorsp.errors import LorspError
from lorsp.prompts.base import GeneratorTrace, VisualPrompt, register_prompt
from lorsp.prompts.lorvp import LorvpOptions, check_rank

GATE_MODES = ("rowcol", "rank")


@dataclass(frozen=True)
class LorspOptions(LorvpOptions):
    """The options of LoRSP: LoR-VP's ``rank``, the spiking generator's and the sparsity term's.

    ``sparsity_weight``, ``sparsity_warmup`` and ``generator_lr_scale`` are read by the training
    protocol (:mod:`lorsp.train`), the others by :class:`LowRankSpikePrompt`.
    """

    time_steps: int = field(default=8, metadata={"help": "T: SNN steps per image"})
    pool: int = field(default=4, metadata={"help": "instance encoding: pooled to 3 x p x p"})
    hidden: int = field(default=16, metadata={"help": "hidden spiking neurons"})
    gates: int = field(default=16, metadata={"help": "G: row (and column) gate groups",
                                             "applies_when": {"gate": ("rowcol",)}})
    beta: float = field(default=0.9, metadata={"help": "membrane decay of every Leaky neuron"})
    threshold: float = field(default=1.0, metadata={"help": "firing threshold"})
    gate: str = field(default="rowcol", metadata={
        "help": "gate rows and columns of the factors (sparse) or whole rank-1 terms (ablation)",
        "choices": GATE_MODES})
    sparsity_weight: float = field(default=10.0, metadata={"help": "weight of the sparsity term in the loss"})
    sparsity_target: float | None = field(default=0.6, metadata={
        "help": "share of zero prompt pixels to aim at: per image, the sparsity term pushes down the rates "
                "of just enough of the weakest row and column gates"})
    sparsity_warmup: float = field(default=0.0, metadata={
        "help": "epochs over which the sparsity weight ramps up linearly from 0"})
    gate_bias: float = field(default=1.0, metadata={
        "help": "initial bias of the gate neurons (per step; >= --threshold opens every gate at start)"})
    surrogate_slope: float = field(default=25.0, metadata={
        "help": "slope k of the fast-sigmoid surrogate 1/(1+k|U-theta|)^2 (training only); smaller "
                "lets silent neurons feel the task's gradient and fire again"})
    generator_lr_scale: float = field(default=10.0, metadata={
        "help": "the spiking generator's learning rate, as a multiple of --lr"})


def leaky_layer(width: int, beta: float, threshold: float, slope: float = 25.0) -> snn.Leaky:
    """A Leaky layer in the exportable form: zero reset, no reset delay, per-neuron tensors."""
    return snn.Leaky(beta=torch.full((width,), float(beta)), threshold=torch.full((width,), float(threshold)),
                     reset_mechanism="zero", reset_delay=False, init_hidden=True,
                     spike_grad=surrogate.fast_sigmoid(slope=slope))


def make_spiking_generator(in_features: int, hidden: int, gates: int, beta: float,
                           threshold: float, slope: float = 25.0) -> nn.Sequential:
    """``Linear -> Leaky -> Linear -> Leaky``: encoded spikes in, gate spikes out (one step per call).

    ``slope`` is the surrogate's (training only: the forward pass, and so every export, is the same).
    """
    return nn.Sequential(nn.Linear(in_features, hidden), leaky_layer(hidden, beta, threshold, slope),
                         nn.Linear(hidden, gates), leaky_layer(gates, beta, threshold, slope))


def reset_state(generator: nn.Module) -> None:
    for m in generator.modules():
        if isinstance(m, snn.Leaky):
            m.reset_mem()


def run_generator(generator: nn.Module, spikes_in: torch.Tensor) -> list[torch.Tensor]:
    """Step ``generator`` over ``spikes_in`` ``(T, N, D)``; the spikes of every Leaky layer, ``(T, N, width)``."""
    reset_state(generator)
    leaky = [m for m in generator if isinstance(m, snn.Leaky)]
    records: list[list[torch.Tensor]] = [[] for _ in leaky]
    for t in range(spikes_in.shape[0]):
        h = spikes_in[t]
        k = 0
        for m in generator:
            h = m(h)
            if isinstance(m, snn.Leaky):
                records[k].append(h)
                k += 1
    return [torch.stack(r) for r in records]


class LowRankSpikePrompt(VisualPrompt):
    def __init__(self, image_size: int, rank: int = 4, time_steps: int = 8, pool: int = 4, hidden: int = 16,
                 gates: int = 16, beta: float = 0.9, threshold: float = 1.0, gate: str = "rowcol",
                 init_std: float = 0.01, init_gain: float = 4.0, gate_bias: float = 1.0,
                 sparsity_target: float | None = 0.6, surrogate_slope: float = 25.0):
        super().__init__(image_size)
        check_rank(rank, image_size)
        if not isinstance(time_steps, int) or not 1 <= time_steps <= 1024:
            raise LorspError(f"--time-steps must be an integer in 1..1024, got {time_steps}")
        if not 1 <= pool <= image_size:
            raise LorspError(f"--pool must be in 1..{image_size}, got {pool}")
        if not 1 <= gates <= image_size:
            raise LorspError(f"--gates must be in 1..{image_size} (the image size), got {gates}")
        if gate not in GATE_MODES:
            raise LorspError(f"unknown --gate {gate!r}; choose one of: {', '.join(GATE_MODES)}")
        if not 0.0 <= beta < 1.0 or not threshold > 0:
            raise LorspError(f"need 0 <= beta < 1 and threshold > 0, got beta {beta}, threshold {threshold}")
        if sparsity_target is not None and not 0.0 <= sparsity_target < 1.0:
            raise LorspError(f"--sparsity-target must be in [0, 1), got {sparsity_target}")
        if not (surrogate_slope > 0 and math.isfinite(surrogate_slope)):
            raise LorspError(f"--surrogate-slope must be a positive number, got {surrogate_slope}")
        self.rank, self.time_steps, self.pool, self.gate = rank, time_steps, pool, gate
        self.sparsity_target = sparsity_target
        self.num_groups = gates
        n_out = 2 * gates if gate == "rowcol" else 3 * rank
        self.B = nn.Parameter(torch.zeros(3, image_size, rank))
        self.A = nn.Parameter(torch.randn(3, rank, image_size) * init_std)
        self.spiking_generator = make_spiking_generator(3 * pool * pool, hidden, n_out, beta, threshold,
                                                        surrogate_slope)
        with torch.no_grad():  # gate_bias = threshold: (nearly) every gate fires at start, as in LoR-VP
            for layer in (self.spiking_generator[0], self.spiking_generator[2]):
                layer.weight.mul_(init_gain)
            self.spiking_generator[2].bias.fill_(gate_bias)
        group = (torch.arange(image_size) * gates) // image_size
        self.register_buffer("group_of_line", group, persistent=False)
        # the trace of the last forward pass, for regularizer() only: readers call trace(x) instead
        self.last_trace: GeneratorTrace | None = None

    def run_generator(self, x: torch.Tensor) -> GeneratorTrace:
        """Encode ``x`` and step the spiking generator over it (keeps no state)."""
        spikes_in = encode(x, self.pool, self.time_steps)
        spikes = run_generator(self.spiking_generator, spikes_in)
        return GeneratorTrace(spikes_in, tuple(spikes), spikes[-1].mean(0))

    def gate_rates(self, x: torch.Tensor) -> torch.Tensor:
        """Spike rates ``rho`` of the gate neurons, ``(N, n_gates)`` in {0, 1/T, ..., 1}."""
        return self.run_generator(x).rates

    def regularizer(self) -> torch.Tensor:
        """The sparsity term of the last forward pass.

        Without a target: the mean gate firing rate (pushes every gate towards silence). With
        ``sparsity_target`` ``s``: per image, the mean rate of the ``k`` gates that fire least
        (:meth:`closing_quota`), for the row gates and the column gates apart (rank gating: of
        all gates). Only the weakest gates are pushed, exactly as many as ``s`` needs, so gates
        close one by one instead of all at once; the task decides which, and the term is zero
        once they are silent.
        """
        if self.last_trace is None:
            raise RuntimeError("regularizer() needs a forward pass first")
        if self.sparsity_target is None:
            return self.last_trace.gate_spikes.mean()
        rho, k = self.last_trace.rates, self.closing_quota()
        if k == 0:
            return rho.sum() * 0.0
        parts = [rho] if self.gate == "rank" else [rho[:, : self.num_groups], rho[:, self.num_groups:]]
        return torch.stack([torch.topk(part, k, dim=1, largest=False).values.mean() for part in parts]).mean()

    def closing_quota(self) -> int:
        """Gates to close per image (per side for row/column gating) so that a share ``s`` of the prompt is zero.

        Row/column gating zeroes ``1 - (1 - k/G)^2`` of the pixels with ``k`` of ``G`` row
        and column groups closed, so ``k = ceil(G (1 - sqrt(1 - s)))``; rank gating zeroes
        ``k / 3r`` of the rank-1 terms, so ``k = ceil(3 r s)``.
        """
        s = self.sparsity_target or 0.0
        if self.gate == "rank":
            return math.ceil(3 * self.rank * s - 1e-9)
        return math.ceil(self.num_groups * (1.0 - math.sqrt(1.0 - s)) - 1e-9)

    def line_gates(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column gates ``(N, L)`` each from the group gates ``g`` ``(N, 2G)`` (row/column gating)."""
        return g[:, : self.num_groups][:, self.group_of_line], g[:, self.num_groups:][:, self.group_of_line]

    @staticmethod
    def gates_open(rho: torch.Tensor) -> torch.Tensor:
        """Binary gates ``1[rho > 0]`` from rates ``rho``, the rate's gradient passed straight through."""
        return (rho > 0).to(rho.dtype) + rho - rho.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trace(x)[0]

    def trace(self, x: torch.Tensor) -> tuple[torch.Tensor, GeneratorTrace]:
        """The prompt for ``x`` and the generator's trace that made it (also kept as :attr:`last_trace`)."""
        self.check_input(x)
        trace = self.run_generator(x)
        self.last_trace = trace
        return self.prompt_from_rates(trace.rates), trace

    def prompt_from_rates(self, rho: torch.Tensor) -> torch.Tensor:
        """The prompt ``(N, 3, L, L)`` from gate rates ``(N, n_gates)``: the host's side of the split.

        Training gets ``rho`` from the generator; deployment from the chip's gate spikes.
        """
        g = self.gates_open(rho)
        if self.gate == "rank":
            gb = g.view(-1, 3, 1, self.rank)
            return torch.matmul(self.B.unsqueeze(0) * gb, self.A.unsqueeze(0))
        rows, cols = self.line_gates(g)  # (N, L) each
        low_rank = torch.bmm(self.B, self.A)  # (3, L, L), rank <= r per channel
        return low_rank.unsqueeze(0) * (rows[:, None, :, None] * cols[:, None, None, :])


@register_prompt("lorsp", LorspOptions)
def lorsp(image_size: int, options: LorspOptions) -> LowRankSpikePrompt:
    """LoRSP's prompt (the training-protocol options are read by :mod:`lorsp.train`, not here)."""
    o = options
    return LowRankSpikePrompt(image_size, rank=o.rank, time_steps=o.time_steps, pool=o.pool, hidden=o.hidden,
                              gates=o.gates, beta=o.beta, threshold=o.threshold, gate=o.gate,
                              sparsity_target=o.sparsity_target, gate_bias=o.gate_bias,
                              surrogate_slope=o.surrogate_slope)
