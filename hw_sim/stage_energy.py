r"""Energy per image of each stage of the deployment split, and of the dense alternatives.

The split (docs/method.md, "Where the work happens"), per image of ``L x L`` pixels, ``D``
encoded inputs, ``T`` steps and ``n`` gate neurons; each stage with what is counted and
what prices it:

* ``encode`` (host): the encoding's own reduction (:meth:`lorsp.encoding.Encoding.host_operations`:
  ``3 L^2`` adds for the pooled image; for the band profiles ``8 L^2`` adds and ``L^2 + 2G``
  multiplies), ``D`` multiplies (scale to counts), ``T D`` adds (spike-train accumulators);
  Horowitz fp32 add and multiply;
* ``generator`` (chip): synops, neuron updates, spikes and spike packets counted on the
  simulated spikes (:func:`hw_sim.energy.count_operations`); a Loihi table of :mod:`hw_sim.energy`;
* ``prompt`` (host): ``n T`` adds (gate spike counts; a gate is open when its count is
  nonzero), then one add per prompt entry, measured on the co-simulated gate spikes
  (:meth:`lorsp.prompts.lorsp.LowRankSpikePrompt.add_from_spikes`): row/column gating adds the fixed ``B A`` at the open rows
  x open columns only (``3 |rows| |cols|``); band gating adds at every pixel where a term is
  open and pays ``r`` multiply-adds per such entry for the sum of the open terms; rank gating
  is dense (``3 L^2``, plus ``3 L^2 r`` multiply-adds for ``B diag(g) A``); Horowitz fp32 add
  and multiply;
* ``backbone`` (accelerator): MACs of backbone and head (:func:`export.onnx_macs.count_macs`,
  stored in the manifest); the Horowitz MAC of the backbone's precision.

.. math::

    E = E_{\text{encode}} + E_{\text{generator}} + E_{\text{prompt}} + E_{\text{backbone}}

Alternatives, with the same per-operation tables:

* ``dense prompt``: the same generator run as a conventional (non-spiking) network on the
  accelerator, ``T (D H + H n)`` MACs plus one per neuron update, at the backbone's
  precision; the host stages stay;
* ``no prompt``: the backbone alone.

The host's operations are priced as fp32 arithmetic (an upper bound for the integer
ones); like every table here they are arithmetic only (:func:`hw_sim.energy.left_out`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hw_sim import energy
from lorsp.encoding import Encoding

STAGES = ("encode", "generator", "prompt", "backbone")
WHERE = {"encode": "host", "generator": "neuromorphic chip", "prompt": "host", "backbone": "accelerator"}
HOST_PRECISION = "fp32"


@dataclass(frozen=True)
class HostOperations:
    """Scalar arithmetic of one host stage, per image."""

    adds: float
    mults: float

    def pj(self, precision: str = HOST_PRECISION) -> float:
        ops = energy.HOROWITZ_PJ[precision]
        return self.adds * ops["add"] + self.mults * ops["mult"]


def host_operations(image_size: int, encoding: Encoding, gates: int, prompt_entries: float | None = None,
                    rank_products: float = 0) -> dict[str, HostOperations]:
    """The host's work per image: ``{"encode": ..., "prompt": ...}``.

    ``gates``: the chip's outputs (``2 G r`` for band gating, ``2G`` row/column, ``3 r`` rank);
    ``prompt_entries``: prompt entries added per image (default: all ``3 L^2``, a dense add);
    ``rank_products``: multiply-adds per image to form the prompt itself (``r`` per entry for
    band gating, ``3 L^2 r`` for rank gating, 0 for row/column gating).
    """
    entries = 3 * image_size ** 2 if prompt_entries is None else prompt_entries
    adds, mults = encoding.host_operations(image_size)
    return {"encode": HostOperations(adds=adds, mults=mults),
            "prompt": HostOperations(adds=gates * encoding.time_steps + entries + rank_products, mults=rank_products)}


def stage_energy(counts: energy.OperationCounts, *, image_size: int, encoding: Encoding, gates: int,
                 backbone_macs: int, precision: str, chip_table: str, prompt_entries: float | None = None,
                 rank_products: float = 0) -> dict[str, Any]:
    """Energy per image of every stage (pJ) and of the split against the dense alternatives.

    ``counts``: the generator's operations per image on the chip; ``gates``: its outputs
    (``2G``); ``precision``: the backbone's (and the dense alternative's) number format;
    ``chip_table``: the Loihi table; ``prompt_entries``, ``rank_products``: the host's prompt
    work per image (:func:`host_operations`).
    """
    dense_table = energy.get_table(energy.DENSE_TABLES[precision])
    chip = energy.energy_per_image(counts, energy.get_table(chip_table))
    dense_generator = energy.energy_per_image(counts, dense_table)
    host = host_operations(image_size, encoding, gates, prompt_entries, rank_products)
    backbone_pj = backbone_macs * dense_table.pj["mac"]
    stages = [
        _stage("encode", host["encode"].pj(), {"add": host["encode"].adds, "mult": host["encode"].mults},
               f"Horowitz 2014 {HOST_PRECISION} add/mult"),
        _stage("generator", chip["total_pj"], {line["operation"]: line["count"] for line in chip["lines"]},
               chip["title"]),
        _stage("prompt", host["prompt"].pj(), {"add": host["prompt"].adds, "mult": host["prompt"].mults},
               f"Horowitz 2014 {HOST_PRECISION} add/mult"),
        _stage("backbone", backbone_pj, {"mac": backbone_macs}, dense_table.title),
    ]
    split = {s["stage"]: s["pj"] for s in stages}
    scenarios = [
        _scenario("split", "LoRSP split: generator on the chip", split),
        _scenario("dense_prompt", f"same prompt network, dense {precision} on the accelerator",
                  {**split, "generator": dense_generator["total_pj"]}),
        _scenario("no_prompt", f"no prompt: backbone only, {precision}", {"backbone": backbone_pj}),
    ]
    return {"precision": precision, "host_precision": HOST_PRECISION, "chip_table": chip_table,
            "stages": stages, "total_pj": sum(split.values()), "scenarios": scenarios,
            "generator_on_chip": chip, "generator_dense": dense_generator,
            "tables": {t.name: asdict(t) for t in (energy.get_table(chip_table), dense_table)},
            "host_pj_per_op": energy.HOROWITZ_PJ[HOST_PRECISION], "host_source": energy.HOROWITZ_SOURCE,
            "left_out": energy.left_out(counts)}


def _stage(name: str, pj: float, operations: dict[str, float], priced_with: str) -> dict[str, Any]:
    return {"stage": name, "where": WHERE[name], "pj": pj, "nj": pj / 1e3, "operations": operations,
            "priced_with": priced_with}


def _scenario(name: str, title: str, stages_pj: dict[str, float]) -> dict[str, Any]:
    total = sum(stages_pj.values())
    return {"name": name, "title": title, "stages_pj": stages_pj, "total_pj": total, "total_nj": total / 1e3}
