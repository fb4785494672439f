r"""How far a simulated chip run is from the PyTorch model, in spikes and end to end.

Spike agreement of layer ``k`` is the share of neuron-steps with the same value:

.. math::

    a_k = \frac{1}{T N n_k} \sum_{t, i, j} [\, s^{sim}_{t i j} = s^{ref}_{t i j} \,]

Prompt difference compares ``P`` built on the host from the simulated gate spikes with
PyTorch's ``P``: max ``|P_sim - P_ref|`` and ``||P_sim - P_ref||_2 / ||P_ref||_2``;
accuracy is the backbone's top-1 on ``x + P``.
"""
from __future__ import annotations

import numpy as np
import torch

from lorsp.model import PromptedClassifier


def spike_agreement(sim: list[np.ndarray], ref: list[np.ndarray], names: list[str]) -> dict:
    layers = []
    for name, s, r in zip(names, sim, ref):
        same = int(np.count_nonzero(s == r))
        layers.append({"layer": name, "agreement": same / s.size, "mismatched_neuron_steps": s.size - same,
                       "neuron_steps": int(s.size)})
    total = sum(l["neuron_steps"] for l in layers)
    mismatched = sum(l["mismatched_neuron_steps"] for l in layers)
    return {"per_layer": layers, "overall": 1.0 - mismatched / total, "exact": mismatched == 0,
            "samples_all_equal": int(np.all([np.all(s == r, axis=(0, 2)) for s, r in zip(sim, ref)], axis=0).sum())}


@torch.no_grad()
def end_to_end(model: PromptedClassifier, x: torch.Tensor, y: torch.Tensor, gate_spikes: np.ndarray,
               prompt_ref: torch.Tensor, logits_ref: torch.Tensor) -> dict:
    """Prompt difference and accuracy change when the gates come from the simulated chip."""
    prompt_sim = model.prompt.prompt_from_spikes(torch.from_numpy(gate_spikes))
    logits_sim = model.classify(x + prompt_sim)
    diff = prompt_sim - prompt_ref
    ref_norm = float(prompt_ref.norm())
    acc_ref = float((logits_ref.argmax(1) == y).float().mean())
    acc_sim = float((logits_sim.argmax(1) == y).float().mean())
    return {"prompt_max_abs_diff": float(diff.abs().max()),
            "prompt_rel_l2_diff": float(diff.norm()) / ref_norm if ref_norm > 0 else float(diff.norm()),
            "prompt_sparsity_pytorch": float((prompt_ref == 0).float().mean()),
            "prompt_sparsity_chip": float((prompt_sim == 0).float().mean()),
            "accuracy_pytorch": acc_ref, "accuracy_chip": acc_sim, "accuracy_change": acc_sim - acc_ref,
            "prediction_agreement": float((logits_sim.argmax(1) == logits_ref.argmax(1)).float().mean())}
