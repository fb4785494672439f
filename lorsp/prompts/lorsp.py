r"""LoRSP: Low-Rank visual Spike Prompting (our reading of arXiv 2606.01945; docs/method.md).

Low-rank prompt factors, as in LoR-VP, whose pieces a small spiking network ``S`` switches on and off per
image. ``S`` reads a binary encoding ``e_t(x)`` of the image (:mod:`lorsp.encoding`) for ``T`` steps; a gate
is open when its neuron fired at least once:

.. math::

    \rho(x) = \frac{1}{T} \sum_{t=1}^{T} S(e_t(x)), \qquad g(x) = \mathbb{1}[\rho(x) > 0]

Training passes the gradient of the rate ``rho`` straight through the step
(``g = 1[rho > 0] + rho - stopgrad(rho)``), so the surrogate gradient of the spikes
reaches the generator while the forward pass keeps LoR-VP's prompt scale. The factors ``b_k``,
``a_k`` in ``R^L`` (``k = 1..r``) are shared by the three channels and mixed per channel by ``m_{c,k}``
(``P_c = B diag(m_c) A``).

``gate="pixel"`` (the default; :mod:`lorsp.prompts.pixel_gates`): one gate neuron per pixel, whose current is
a ``3 x 3`` convolution of the image's rate-coded spikes plus a drive that grows with the prompt's own magnitude
``sum_c |P_c|``; ``P(x) = P * 1[rho(x) > 0]``, so the zeros follow each image at pixel level (the product is no
longer of rank ``<= r``; the parameters are). The gates start open and learn (``train_generator="all"``, at
``--lr`` times ``generator_lr_scale = 1``, surrogate slope 5); the sparsity term
(:meth:`LowRankSpikePrompt.regularizer`) pulls each image's closed share to ``sparsity_target = 0.55``, ramped
in over ``sparsity_warmup = 1`` epoch. It runs exactly as a NIR graph on the simulator and deploys as a
Loihi bundle of its own kind (``"chip_network": "pixel-gates"``, docs/loihi.md).

``gate="band"`` (the default until :data:`LAST_BAND_DEFAULT`; :data:`BAND_DEFAULTS` holds the options it was
measured with): rank-1 terms gated band by band. ``G`` bands of rows and ``G`` of columns; term ``k`` has its
own row gates ``g^{row}_k`` and column gates ``g^{col}_k`` (``2 G r`` gate neurons, row ``i`` reading
band ``floor(i G / L)``):

.. math::

    P_c(x) = \sum_{k=1}^{r} m_{c,k}\, (g^{row}_k(x) \odot b_k)\, (g^{col}_k(x) \odot a_k)^\top

so ``rank P_c(x) <= r``, and ``P_c(x)[i, j] = 0`` exactly wherever no term has both row
``i``'s and column ``j``'s gate open: the non-zero pixels are a union of at most ``r``
rectangles of bands, chosen per image. The encoding is ``bands``: how much of the
image's content lies in each row band and each column band, so each gate is told about
its own band. The generator relays each band's value to that band's gates (layer 1 the
identity, layer 2 band to band, small random cross-talk), and before the first step
:meth:`LowRankSpikePrompt.calibrate` shifts the gate biases until the first
``max(batch size, 64)`` images of the training split close the target share of pixels: the prompt starts
sparse, and follows each image's content. As measured (``train_generator="none"``) the generator keeps that
start and only the factors and the mix learn: trained band generators (``all``) were measured to collapse to
one mask for every image within the protocol's 160 steps (docs/method.md). The sparsity term exists only
where the generator learns. ``relay="open"`` holds every gate open: LoRSP's dense twin, the same factors with
no zeros.

Ablations: ``gate="rowcol"`` gates the rows and columns of the whole product
(``P_c = diag(g^{row}) B_c A_c diag(g^{col})``, ``2 G`` gates; the earlier design, which old host files and
checkpoints hold); ``factors="per-channel"`` gives each channel its own ``B_c`` (L x r) and ``A_c`` (r x L),
as LoR-VP; ``encoding="pool"`` feeds the ``3 x p x p`` pooled image to a band or row/column generator;
``pixel_input="none"`` gives pixel gating one static mask.

Band and row/column gating's ``S`` is ``Linear(D, H) -> Leaky -> Linear(H, n_gates) -> Leaky``, snnTorch
``Leaky`` neurons with ``reset_mechanism="zero"``, ``reset_delay=False`` and per-neuron ``beta`` and
``threshold`` tensors: the form that survives NIR export and Lava unchanged. Parameters: factors
``2 L r + 3 r`` (shared) or ``6 L r`` (per channel); pixel gates ``3 k^2 + 2`` (the kernel, its bias and the
magnitude's gain); a band generator ``D H + H + n_gates H + n_gates``. At L = 128 and r = 8 the default
trains 2,072 factor and mix parameters and 29 gate parameters (2,101); band gating at r = 4, G = 16, H = 32
trains 1,036 and holds 5,280 fixed generator parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

from lorsp.encoding import Encoding, list_encodings
from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.cli_options import integer, number
from lorsp.prompts.base import (GeneratorTrace, LearningRates, PromptOutput, Retired, VisualPrompt, option_flag,
                                register_prompt)
from lorsp.prompts.grid import GRID_STEP, on_grid, snap_to_grid
from lorsp.prompts.lorvp import LorvpOptions, check_rank
from lorsp.prompts.pixel_gates import PixelGates

GATE_MODES = ("band", "rowcol", "pixel")
LINE_GATES = ("band", "rowcol")
"""The gate modes whose generator reads an encoding through ``Linear -> Leaky -> Linear -> Leaky``."""
GENERATOR_TRAINING = ("all", "none")
BAND_RELAYS = ("content", "open")
LAST_WITH_TRIES = "567fd19"
"""The last commit with the band-gating tries removed since (docs/method.md keeps their figures)."""
LAST_WITH_LEARNED = "37f2411"
"""The last commit with the learned relay (and its ``--sparsity-feedback``), the comb band layout and rank
gating, each measured and removed since (docs/method.md keeps their figures)."""
REMOVED_RELAYS = {**{v: Retired(LAST_WITH_TRIES) for v in ("background", "frame", "mixed", "border")},
                  "learned": Retired(LAST_WITH_LEARNED)}
REMOVED_GENERATOR_TRAINING = {v: Retired(LAST_WITH_TRIES) for v in ("weights", "gate-biases")}
REMOVED_GATES = {"rank": Retired(LAST_WITH_LEARNED)}
FACTOR_MODES = ("shared", "per-channel")
LAST_BAND_DEFAULT = "b567904"
"""The last commit at which band gating was LoRSP's default (its tables in docs/method.md were measured so)."""
BAND_DEFAULTS = {"gate": "band", "train_generator": "none", "sparsity_target": 0.6, "sparsity_warmup": 0.0,
                 "surrogate_slope": 25.0, "generator_lr_scale": 10.0}
"""Band gating as it was the default until :data:`LAST_BAND_DEFAULT`: the options that differ from today's
defaults (:func:`band_flags` spells them for ``lorsp-train``). A run given them has the config of a run of the
old default."""


@dataclass(frozen=True)
class LorspOptions(LorvpOptions):
    """The options of LoRSP: LoR-VP's ``rank``, the spiking generator's and the sparsity term's.

    All are read by :class:`LowRankSpikePrompt`: ``sparsity_weight`` and ``sparsity_warmup`` by its
    loss terms, ``generator_lr_scale`` by its parameter groups, the others by its construction.
    """

    time_steps: int = field(default=8, metadata={"help": "T: SNN steps per image",
                                                 "parse": integer(1, 10_000)})
    encoding: str = field(default="bands", metadata={
        "help": "the generator's input: content per row and column band (bands) or the pooled image (pool)",
        "choices": tuple(list_encodings()), "legacy": "pool", "applies_when": {"gate": LINE_GATES}})
    pool: int = field(default=4, metadata={"help": "pool encoding: the image pooled to 3 x p x p",
                                           "parse": integer(1, 4096),
                                           "applies_when": {"encoding": ("pool",)}})
    hidden: int = field(default=32, metadata={"help": "hidden spiking neurons (band start: 2 G relays)",
                                             "parse": integer(1, 65_536), "applies_when": {"gate": LINE_GATES}})
    gates: int = field(default=16, metadata={"help": "G: bands of rows (and of columns); the bands encoding's size "
                                                     "too", "parse": integer(1, 4096),
                                            "applies_when": {"gate": LINE_GATES}})
    factors: str = field(default="shared", metadata={
        "help": "low-rank factors shared by the channels with a per-channel mix, or one pair per channel",
        "choices": FACTOR_MODES, "legacy": "per-channel"})
    train_generator: str = field(default="all", metadata={
        "help": "whether the spiking generator learns (all: the default, and what pixel gating needs) or stays "
                "as it starts (none: band gating's relay as measured)",
        "choices": GENERATOR_TRAINING, "legacy": "all", "retired": REMOVED_GENERATOR_TRAINING})
    relay: str = field(default="content", metadata={
        "help": "band gating's start: a gate opens on bands with much of the image's content (content); "
                "every gate is held open, the same for every image (open: LoRSP's dense twin, the same factors "
                "with no zeros)",
        "choices": BAND_RELAYS, "retired": REMOVED_RELAYS,
        "applies_when": {"gate": ("band",)}, "legacy": "content"})
    relay_noise: float = field(default=0.05, metadata={
        "help": "band gating's start: std of the random cross-talk between bands, in thresholds (0: an exact "
                "sparse relay)", "applies_when": {"gate": ("band",)}, "legacy": 0.05, "parse": number(0.0)})
    init_std: float = field(default=0.01, metadata={
        "help": "std of the factors a_k at start (b_k start at zero, so the prompt starts at zero, as LoR-VP's)",
        "legacy": 0.01, "parse": number(0.0, above=True)})
    beta: float = field(default=0.5, metadata={
        "help": "membrane decay of every Leaky neuron (0.5: the chip's integer decay is exact for T <= 8, "
                "see docs/method.md)", "legacy": 0.9, "parse": number(0.0, 1.0, below=True)})
    threshold: float = field(default=1.0, metadata={"help": "firing threshold", "parse": number(0.0, above=True)})
    pixel_input: str = field(default="image", metadata={
        "help": "pixel gating: the gates read the image's spikes and the prompt's magnitude (image), or the "
                "magnitude alone, one static mask for every image (none: the static-mask ablation)",
        "choices": ("image", "none"), "applies_when": {"gate": ("pixel",)}})
    pixel_code: str = field(default="rate", metadata={
        "help": "pixel gating: how each pixel's value becomes the gates' input spikes: as many spikes as its value "
                "in T steps (rate), or one spike, the brighter the earlier (latency: at most 1/T of the inputs "
                "spike on any step, fewer synaptic operations on a chip)",
        "choices": ("rate", "latency"), "applies_when": {"gate": ("pixel",)}, "legacy": "rate"})
    pixel_kernel: int = field(default=3, metadata={
        "help": "pixel gating: the side k of the gates' k x k convolution of the image's spikes (odd)",
        "parse": integer(1, 31), "applies_when": {"gate": ("pixel",)}, "legacy": 3})
    gate: str = field(default="pixel", metadata={
        "help": "gate every pixel with its own gate neuron fed by the image and the prompt's magnitude (pixel: "
                "the default, learning with --train-generator all), every rank-1 term band by band (band: "
                "measured with --train-generator none --sparsity-target 0.6), or the rows and columns of the "
                "product (rowcol)",
        "choices": GATE_MODES, "retired": REMOVED_GATES})  # every LoRSP config holds it (since 4fd5180): no legacy
    sparsity_weight: float = field(default=10.0, metadata={"help": "weight of the sparsity term in the loss",
                                                                    "parse": number(0.0)})
    sparsity_target: float | None = field(default=0.55, metadata={
        "help": "share of zero prompt pixels to aim at (pixel, and band with a learning generator: the value "
                "each image's closed share is pulled to; band: the calibrated start too; rowcol: per image, the "
                "term pushes down just enough of the weakest gates)", "parse": number(0.0, 1.0, below=True),
        "legacy": None})
    sparsity_warmup: float = field(default=1.0, metadata={
        "help": "epochs over which the sparsity weight ramps up linearly from 0", "parse": number(0.0),
        "legacy": 0.0})
    gate_bias: float = field(default=1.0, metadata={
        "help": "initial bias of the gate neurons (per step; >= --threshold opens every gate at start; "
                "band gates are calibrated instead)", "applies_when": {"gate": ("rowcol",)}})
    surrogate_slope: float = field(default=5.0, metadata={
        "help": "slope k of the fast-sigmoid surrogate 1/(1+k|U-theta|)^2 (training only); smaller "
                "lets silent neurons feel the task's gradient and fire again (snnTorch's own default: 25)",
        "parse": number(0.0, above=True), "legacy": 25.0})
    generator_lr_scale: float = field(default=1.0, metadata={
        "help": "the spiking generator's learning rate, as a multiple of --lr", "parse": number(0.0, above=True),
        "legacy": 1.0})


def band_flags() -> tuple[str, ...]:
    """:data:`BAND_DEFAULTS` as ``lorsp-train`` options: ``("--gate", "band", "--train-generator", "none", ...)``."""
    return tuple(part for name, value in BAND_DEFAULTS.items()
                 for part in (option_flag(name), f"{value:g}" if isinstance(value, float) else str(value)))


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


def run_generator(generator: nn.Module, spikes_in: torch.Tensor, *, grid: bool = False) -> list[torch.Tensor]:
    """Step ``generator`` over ``spikes_in`` ``(T, N, D)``; the spikes of every Leaky layer, ``(T, N, width)``.

    ``grid``: every Linear layer computes with its weights and biases on :data:`GRID_STEP` (:func:`on_grid`).
    """
    reset_state(generator)
    leaky = [m for m in generator if isinstance(m, snn.Leaky)]
    linear = {id(m): (on_grid(m.weight), on_grid(m.bias)) if grid else (m.weight, m.bias)
              for m in generator if isinstance(m, nn.Linear)}
    records: list[list[torch.Tensor]] = [[] for _ in leaky]
    for t in range(spikes_in.shape[0]):
        h = spikes_in[t]
        k = 0
        for m in generator:
            h = torch.nn.functional.linear(h, *linear[id(m)]) if id(m) in linear else m(h)
            if isinstance(m, snn.Leaky):
                records[k].append(h)
                k += 1
    return [torch.stack(r) for r in records]


def lines_to_bands(image_size: int, gates: int) -> torch.Tensor:
    """The band of each of the ``image_size`` lines, ``(L,)`` int64: ``floor(i G / L)``, blocks of neighbouring
    lines."""
    return (torch.arange(image_size) * gates) // image_size


@register_prompt("lorsp")
class LowRankSpikePrompt(VisualPrompt):
    """LoRSP's prompt: low-rank factors gated per image by a spiking generator (module docstring)."""

    Options = LorspOptions
    retired_options = {"border_bands": Retired(LAST_WITH_TRIES, kept=1),
                       "usage_weight": Retired(LAST_WITH_TRIES, kept=0.0),
                       "band_layout": Retired(LAST_WITH_LEARNED, kept="blocks"),
                       "sparsity_feedback": Retired(LAST_WITH_LEARNED, kept=0.0)}
    chip_part = True
    init_gain = 4.0
    """Row/column gating: the generator's snnTorch start, scaled by this."""

    def __init__(self, image_size: int, options: LorspOptions | None = None, **overrides):
        super().__init__(image_size, options, **overrides)
        o = self.options
        rank, gates, hidden, gate, encoding = o.rank, o.gates, o.hidden, o.gate, o.encoding
        check_rank(rank, image_size)
        if gate == "pixel":
            encoding, pool = "pool", image_size  # the image's spikes at full resolution
        else:
            pool = o.pool
        if encoding == "pool" and not 1 <= pool <= image_size:
            raise LorspError(f"--pool must be in 1..{image_size}, got {o.pool}")
        if not 1 <= gates <= image_size:
            raise LorspError(f"--gates must be an integer in 1..{image_size} (the image size), got {gates}")
        if gate == "band" and encoding == "bands":
            if hidden != 2 * gates:
                raise LorspError(f"band gating's relay start needs --hidden 2 x --gates = {2 * gates}, got {hidden}")
            if image_size % gates:
                raise LorspError(f"band gating with the bands encoding needs --gates to divide the image size "
                                 f"{image_size}, got {gates}")
        if gate == "pixel" and o.pixel_kernel % 2 == 0:
            raise LorspError(f"--pixel-kernel must be odd (the gate map keeps the image's size), got {o.pixel_kernel}")
        self.encoding = Encoding(encoding, pool if encoding == "pool" else gates, o.time_steps,
                                 o.pixel_code if gate == "pixel" else "rate")
        self.rank, self.time_steps, self.gate, self.factors = rank, o.time_steps, gate, o.factors
        self.pool = o.pool
        self.sparsity_target = o.sparsity_target
        self.num_groups = gates
        n_out = {"band": 2 * gates * rank, "rowcol": 2 * gates, "pixel": image_size ** 2}[gate]
        self.n_gates = n_out
        copies = 1 if o.factors == "shared" else 3
        self.B = nn.Parameter(torch.zeros(copies, image_size, rank))
        self.A = nn.Parameter(torch.randn(copies, rank, image_size) * o.init_std)
        self.mix = nn.Parameter(torch.ones(3, rank)) if o.factors == "shared" else None
        if gate == "pixel":
            self.spiking_generator: nn.Module = PixelGates(o.beta, o.threshold, o.surrogate_slope, o.pixel_kernel,
                                                           reads_image=o.pixel_input == "image")
        else:
            self.spiking_generator = make_spiking_generator(self.encoding.inputs, hidden, n_out, o.beta, o.threshold,
                                                            o.surrogate_slope)
        self.relay = o.relay
        # gates whose bias the start fixes whatever the image (relay "open"); the calibration leaves them alone
        self.register_buffer("held", torch.zeros(n_out, dtype=torch.bool), persistent=False)
        if gate == "band":
            self._relay_bands(o.threshold, noise=o.relay_noise, relay=o.relay)
        elif gate != "pixel":  # pixel gates start open (PixelGates)
            with torch.no_grad():  # gate_bias = threshold: (nearly) every gate fires at start, as in LoR-VP
                for layer in (self.spiking_generator[0], self.spiking_generator[2]):
                    layer.weight.mul_(self.init_gain)
                self.spiking_generator[2].bias.fill_(o.gate_bias)
        self.train_generator = o.train_generator
        for name, param in self.spiking_generator.named_parameters():
            param.requires_grad_(o.train_generator == "all" and param.requires_grad)
        self.register_buffer("group_of_line", lines_to_bands(image_size, gates), persistent=False)

    # ------------------------------------------------------------------ training
    def param_groups(self, rates: LearningRates) -> list[tuple[list[nn.Parameter], float]]:
        """The factors and the mix at ``rates.prompt``; the generator's learning parts at ``--generator-lr-scale``
        times ``rates.base``."""
        in_generator = {id(p) for p in self.spiking_generator.parameters()}
        learning = [p for p in self.parameters() if p.requires_grad]
        return [([p for p in learning if id(p) not in in_generator], rates.prompt),
                ([p for p in learning if id(p) in in_generator], rates.base * self.options.generator_lr_scale)]

    def sparsity_weight_at(self, epoch: float) -> float:
        """The sparsity term's weight at (fractional) ``epoch``: ramped up linearly over ``--sparsity-warmup``."""
        o = self.options
        if o.sparsity_warmup <= 0:
            return o.sparsity_weight
        return o.sparsity_weight * min(1.0, epoch / o.sparsity_warmup)

    def selectable(self, epochs_done: int) -> bool:
        """A learning generator's model competes in the val selection once its sparsity term has its full weight
        (after ``--sparsity-warmup``), so a prompt not yet as sparse as trained cannot be the one kept."""
        return not self.learns or self.sparsity_weight_at(epochs_done) >= self.options.sparsity_weight

    def loss_terms(self, out: PromptOutput, epoch: float) -> torch.Tensor | None:
        """``--sparsity-weight`` (ramped, :meth:`sparsity_weight_at`) times :meth:`regularizer` of the batch's trace."""
        if not self.options.sparsity_weight:
            return None
        reg = self.regularizer(out.trace)
        return None if reg is None else self.sparsity_weight_at(epoch) * reg.float()

    # ------------------------------------------------------------------ start
    @torch.no_grad()
    def _relay_bands(self, threshold: float, noise: float = 0.05, relay: str = "content") -> None:
        """Band gating's start: each gate listens to its own band (module docstring).

        With the bands encoding, hidden neuron ``j`` relays input ``j`` (weight ``1.5 theta``
        fires on every input spike) and gate ``(side, k, b)`` reads hidden ``(side, b)``, excited
        (``relay="content"``: the gate opens on bands with content), with small random cross-talk
        that lets training mix bands. ``"open"``: every gate listens to nothing and is held open
        (bias ``2 theta``, above threshold at every step; :attr:`held`, which the calibration leaves
        alone). With another encoding (or ``H != 2 G``) both layers keep snnTorch's default start,
        scaled as the other gate modes do.
        """
        first, second = self.spiking_generator[0], self.spiking_generator[2]
        d, h, g, r = first.in_features, first.out_features, self.num_groups, self.rank
        if self.encoding.name != "bands" or h != d:
            for layer in (first, second):
                layer.weight.mul_(4.0)
            second.bias.zero_()
            return
        first.weight.normal_(0.0, noise * threshold).add_(1.5 * threshold * torch.eye(d))
        first.bias.zero_()
        second.weight.normal_(0.0, noise * threshold)
        second.bias.zero_()
        band = torch.arange(g)
        for side in range(2):
            for k in range(r):
                gates = self._gate_index(side, k, band)
                if relay == "open":  # fires at every step whatever it hears
                    self.held[gates] = True
                    second.weight[gates] = 0.0
                    second.bias[gates] = 2.0 * threshold
                    continue
                second.weight[gates, side * g + band] += 0.5 * threshold
        for layer in (first, second):
            layer.weight.copy_(snap_to_grid(layer.weight))
        second.bias.copy_(snap_to_grid(second.bias))

    @property
    def learns(self) -> bool:
        """Whether part of the generator learns: it then trains on the grid (:func:`on_grid`)."""
        return any(p.requires_grad for p in self.spiking_generator.parameters())

    @torch.no_grad()
    def settle(self) -> None:
        """After an epoch's steps: a learning generator's weights and biases snapped onto the grid in place. The
        forward pass computed with these values already, so what the model computes does not change."""
        for p in self.spiking_generator.parameters():
            if p.requires_grad:
                p.copy_(snap_to_grid(p))

    def _gate_index(self, side: int, k: int, band: torch.Tensor | int) -> torch.Tensor | int:
        """Band gating: the gate neuron of ``side`` (0 rows, 1 columns), term ``k`` and ``band``."""
        return side * self.rank * self.num_groups + k * self.num_groups + band

    @property
    def calibrates(self) -> bool:
        """Band gating starts from a calibration; the other modes do not."""
        return self.gate == "band"

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, steps: int = 40) -> float | None:
        """Shift the gate biases until the prompt of images ``x`` has the target share of closed pixels.

        Band gating only (other modes: nothing to do, None): bisection on one offset
        added to every gate bias, so each image keeps its own pattern and the batch as a whole
        starts at ``sparsity_target`` (0.5 without a target). Returns the share reached.
        """
        if not self.calibrates:
            return None
        target = 0.5 if self.sparsity_target is None else self.sparsity_target
        bias = self.spiking_generator[2].bias
        base = bias.clone()
        shifted = (~self.held).to(bias.dtype)  # gates the start holds (relay "open") keep their bias
        reach = 4.0 * self.spiking_generator[3].threshold.max().item()
        low, high = -reach, reach
        share = 0.0
        for _ in range(steps):  # the closed share falls as the offset rises
            mid = 0.5 * (low + high)
            bias.copy_(base + mid * shifted)
            share = float(self.closed_share(self.gates_open(self.gate_rates(x))).mean())
            if share > target:
                low = mid
            else:
                high = mid
        # the offset rounded down onto the grid: the share stays at or above the target, and the biases
        # stay integers on the chip (snap_to_grid)
        bias.copy_(base + math.floor(low / GRID_STEP) * GRID_STEP * shifted)
        return float(self.closed_share(self.gates_open(self.gate_rates(x))).mean())

    # ------------------------------------------------------------------ the generator
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The generator's input spikes ``(T, N, D)`` for images ``x`` (:mod:`lorsp.encoding`)."""
        return self.encoding(x)

    def run_generator(self, x: torch.Tensor) -> GeneratorTrace:
        """Encode ``x`` and step the spiking generator over it (keeps no state)."""
        spikes_in = self.encode(x)
        if self.gate == "pixel":
            gate_spikes = self.spiking_generator(spikes_in, self.magnitude(), grid=self.learns)
            return GeneratorTrace(spikes_in, (gate_spikes,), gate_spikes.mean(0))
        spikes = run_generator(self.spiking_generator, spikes_in, grid=self.learns)
        return GeneratorTrace(spikes_in, tuple(spikes), spikes[-1].mean(0))

    def magnitude(self) -> torch.Tensor:
        """Pixel gating: the dense low-rank prompt's magnitude map ``M = sum_c |P_c|`` ``(L, L)``, the gates' drive."""
        return self.low_rank_prompt().abs().sum(0)

    def low_rank_prompt(self) -> torch.Tensor:
        """The factors' whole low-rank prompt ``(3, L, L)``, every gate open (``P_c = B_c diag(m_c) A_c``)."""
        return torch.matmul(*self.channel_factors())

    def gate_rates(self, x: torch.Tensor) -> torch.Tensor:
        """Spike rates ``rho`` of the gate neurons, ``(N, n_gates)`` in {0, 1/T, ..., 1}."""
        return self.run_generator(x).rates

    # ------------------------------------------------------------------ sparsity
    def band_sizes(self) -> torch.Tensor:
        """Lines per band, ``(G,)``: rows (and columns) that read each band's gate."""
        return torch.bincount(self.group_of_line, minlength=self.num_groups).to(self.B.dtype)

    def closed_share(self, g: torch.Tensor) -> torch.Tensor:
        """Per image, the share of pixels that gates ``g`` ``(N, n_gates)`` close, ``(N,)`` (differentiable).

        band: ``mean_ij prod_k (1 - g^row_k(i) g^col_k(j))``, computed band by band; rowcol:
        ``1 - (open rows / L)(open columns / L)``; pixel: the share of closed gates.
        """
        if self.gate == "pixel":
            return 1.0 - g.mean(1)
        w = self.band_sizes() / self.image_size  # (G,)
        if self.gate == "rowcol":
            rows, cols = g[:, : self.num_groups], g[:, self.num_groups:]
            return 1.0 - (rows @ w) * (cols @ w)
        rows, cols = self.band_gates(g)  # (N, r, G) each
        closed = torch.prod(1.0 - rows[:, :, :, None] * cols[:, :, None, :], dim=1)  # (N, G, G)
        return torch.einsum("nab,a,b->n", closed, w, w)

    def regularizer(self, trace: GeneratorTrace) -> torch.Tensor | None:
        """The sparsity term of the forward pass that gave ``trace``.

        band: the mean over images of ``|closed share - s|``, which pulls each image's closed
        share to the target ``s`` (no target: the mean gate rate); pixel gating the same.
        ``None`` when the generator does not learn (``train_generator="none"``: nothing the term could move).
        rowcol, without a target: the mean gate firing rate; with target ``s``: per
        image, the mean rate of the ``k`` gates that fire least (:meth:`closing_quota`), for
        the row gates and the column gates apart, so gates close
        one by one; the task decides which, and the term is zero once they are silent.
        """
        if not self.learns:
            return None
        return self.sparsity_term(trace.rates, trace)

    def sparsity_term(self, rho: torch.Tensor, trace: GeneratorTrace) -> torch.Tensor:
        """The closed-share part of :meth:`regularizer` for gate rates ``rho`` ``(N, n_gates)`` of ``trace``."""
        if self.sparsity_target is None:
            return trace.gate_spikes.mean()
        if self.gate in ("band", "pixel"):
            return (self.closed_share(self.gates_open(rho)) - self.sparsity_target).abs().mean()
        k = self.closing_quota()
        if k == 0:
            return rho.sum() * 0.0
        parts = [rho[:, : self.num_groups], rho[:, self.num_groups:]]
        return torch.stack([torch.topk(part, k, dim=1, largest=False).values.mean() for part in parts]).mean()

    def closing_quota(self) -> int:
        """Gates to close per image and side (row/column gating) so that a share ``s`` of the prompt is zero.

        Row/column gating zeroes ``1 - (1 - k/G)^2`` of the pixels with ``k`` of ``G`` row
        and column groups closed, so ``k = ceil(G (1 - sqrt(1 - s)))``. Band and pixel gating have no quota (0).
        """
        s = self.sparsity_target or 0.0
        if self.gate in ("band", "pixel"):
            return 0
        return math.ceil(self.num_groups * (1.0 - math.sqrt(1.0 - s)) - 1e-9)

    # ------------------------------------------------------------------ the prompt
    def band_gates(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Band gating: row and column gates per term and band, ``(N, r, G)`` each, from ``g`` ``(N, 2 G r)``."""
        rows, cols = g.view(-1, 2, self.rank, self.num_groups).unbind(1)
        return rows, cols

    def line_gates(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gates per line: ``(N, L)`` rows and columns (rowcol), or ``(N, r, L)`` per term (band)."""
        if self.gate == "band":
            rows, cols = self.band_gates(g)
            return rows[..., self.group_of_line], cols[..., self.group_of_line]
        return g[:, : self.num_groups][:, self.group_of_line], g[:, self.num_groups:][:, self.group_of_line]

    def channel_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``B_c diag(m_c)`` ``(3, L, r)`` and ``A_c`` (``(3, r, L)``, or ``(1, r, L)`` shared) of every channel."""
        if self.mix is None:
            return self.B, self.A
        return self.B * self.mix[:, None, :], self.A

    @staticmethod
    def gates_open(rho: torch.Tensor) -> torch.Tensor:
        """Binary gates ``1[rho > 0]`` from rates ``rho``, the rate's gradient passed straight through.

        ``rho - rho.detach()`` is exactly 0 in the forward pass, so the gates are exactly 0 or 1
        whatever ``T`` (``(1 + rho) - rho`` would round for ``T`` not a power of two).
        """
        return (rho > 0).to(rho.dtype) + (rho - rho.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(x).prompt

    def output(self, x: torch.Tensor) -> PromptOutput:
        """The prompt for ``x`` and the generator's trace that made it (the sparsity term reads it)."""
        self.check_input(x)
        trace = self.run_generator(x)
        return PromptOutput(self.prompt_from_rates(trace.rates), trace)

    def prompt_from_rates(self, rho: torch.Tensor) -> torch.Tensor:
        """The prompt ``(N, 3, L, L)`` from gate rates ``(N, n_gates)``: the host's side of the split.

        Training gets ``rho`` from the generator; deployment from the chip's gate spikes.
        """
        g = self.gates_open(rho)
        if self.gate == "pixel":
            return self.low_rank_prompt().unsqueeze(0) * g.view(-1, 1, self.image_size, self.image_size)
        B, A = self.channel_factors()
        if self.gate == "band":
            rows, cols = self.line_gates(g)  # (N, r, L) each
            left = B.unsqueeze(0) * rows.transpose(1, 2)[:, None]  # (N, 3, L, r)
            right = A.unsqueeze(0) * cols[:, None]  # (N, 1 or 3, r, L)
            return torch.matmul(left, right)
        rows, cols = self.line_gates(g)  # (N, L) each
        low_rank = torch.matmul(B, A)  # (3, L, L), rank <= r per channel
        return low_rank.unsqueeze(0) * (rows[:, None, :, None] * cols[:, None, None, :])


    # ------------------------------------------------------------------ the host's side of the chip
    def host_state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The host file's LoRSP part: the encoding's size and ``T``, the factors (``B``, ``A``, ``mix`` with
        shared factors), the line-to-band map; metadata ``gate``, ``encoding`` (its name) and ``factors``. Pixel
        gating adds the gates' trained tensors (their kernel, bias and ``kappa``: the PyTorch reference's gates) and
        metadata ``code`` (the spike code)."""
        tensors = {"encoding.size": torch.tensor([self.encoding.size], dtype=torch.int64),
                   "encoding.time_steps": torch.tensor([self.encoding.time_steps], dtype=torch.int64),
                   "prompt.B": self.B, "prompt.A": self.A,
                   "prompt.group_of_line": self.group_of_line.to(torch.int64)}
        if self.mix is not None:
            tensors["prompt.mix"] = self.mix
        metadata = {"gate": self.gate, "encoding": self.encoding.name, "factors": self.factors}
        if self.gate == "pixel":
            gates = self.spiking_generator
            tensors.update({"prompt.spiking_generator.conv.weight": gates.conv.weight,
                            "prompt.spiking_generator.conv.bias": gates.conv.bias,
                            "prompt.spiking_generator.kappa": gates.kappa})
            metadata["code"] = self.encoding.code
        return tensors, metadata

    @torch.no_grad()
    def prompt_from_spikes(self, gate_spikes: torch.Tensor) -> torch.Tensor:
        """The prompt from the chip's gate spikes ``(T, N, gates)``: :meth:`prompt_from_rates` of their rates."""
        return self.prompt_from_rates(gate_spikes.float().mean(0))

    @torch.no_grad()
    def add_from_spikes(self, x: torch.Tensor, gate_spikes: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``x + P(x)`` as the host computes it from the chip's gate spikes ``(T, N, gates)``, and the number of
        prompt entries it added (whole batch).

        Row/column gating: only the open block changes. A row (column) is open when its gate
        neuron fired at least once in the ``T`` steps, and the fixed product ``B A`` (computed once
        per call) is added at the open rows x open columns of each channel; every other pixel is
        left as it is. This equals :meth:`prompt_from_rates` added densely, bit for bit
        (``x + 0 = x``); a host that visits only the open block needs ``3 |rows| |cols|`` adds
        per image instead of ``3 L^2``, and that is the count returned. Band gating: the prompt
        of the open terms, added where at least one term is open (``3`` entries per open pixel;
        :meth:`open_pixels`); pixel gating likewise.
        """
        if self.gate != "rowcol":
            added = x + self.prompt_from_spikes(gate_spikes)
            return added, 3 * int(self.open_pixels(gate_spikes).sum())
        rows, cols = self.line_gates(gate_spikes.bool().any(0))  # (N, L) each: fired at least once
        low_rank = torch.matmul(*self.channel_factors())  # (3, L, L)
        open_block = rows[:, None, :, None] & cols[:, None, None, :]  # (N, 1, L, L)
        # On a vector CPU, adding everywhere and selecting is faster than gathering the open
        # entries (0.2 ms against 3.6 ms per batch of 64 at 32 px here); the result is the same,
        # and the count is what a host that visits only the open block spends.
        return torch.where(open_block, x + low_rank, x), 3 * int(open_block.sum())

    @torch.no_grad()
    def open_pixels(self, gate_spikes: torch.Tensor) -> torch.Tensor:
        """Band gating: ``(N, L, L)`` True where some term has both its row's and its column's gate open; pixel
        gating: where the pixel's gate fired."""
        if self.gate == "pixel":
            return gate_spikes.bool().any(0).view(-1, self.image_size, self.image_size)
        rows, cols = self.line_gates(gate_spikes.bool().any(0).to(torch.float32))  # (N, r, L) each
        return torch.einsum("nki,nkj->nij", rows, cols) > 0
