"""Evaluation: accuracy, loss and, for prompts that have them, sparsity and spike statistics."""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lorsp.snn_stats import is_spike_like, synops_per_sample


def spiking_layer_stats(generator: nn.Sequential, input_spikes: torch.Tensor,
                        layer_spikes: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-batch sums for a ``Linear -> Leaky -> ...`` generator: spikes, neuron-steps, synops."""
    linears = [m for m in generator if isinstance(m, nn.Linear)]
    inputs = [input_spikes, *layer_spikes[:-1]]
    out: dict[str, torch.Tensor] = {}
    for k, (lin, x_in, spk) in enumerate(zip(linears, inputs, layer_spikes)):
        out[f"spikes/{k}"] = spk.sum()
        out[f"neuron_steps/{k}"] = torch.tensor(float(spk.numel()))
        out[f"synops/{k}"] = synops_per_sample(x_in, lin.weight).sum()
        out[f"synops_not_acs/{k}"] = torch.tensor(float(not is_spike_like(x_in)))  # batches with graded input
    out["input_spikes"] = input_spikes.sum()
    return out


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: Dataset, batch_size: int = 256,
             desc: str | None = None, progress: bool = True) -> dict:
    """Top-1 accuracy and mean cross-entropy of ``model`` on ``dataset``, plus prompt statistics.

    ``prompt_sparsity`` is the share of exactly-zero prompt entries. For spiking prompts:
    ``firing_rate`` per generator layer and overall (spikes / neuron-steps),
    ``spikes_per_image`` (generator neurons), ``input_spikes_per_image`` (the encoding) and
    ``snn_synops_per_image`` (NeuroBench synaptic operations, all layers).
    """
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    correct, total, loss_sum, zeros, entries = 0, 0, 0.0, 0, 0
    sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.tensor(0.0, dtype=torch.float64))
    generator = getattr(model.prompt, "spiking_generator", None)
    n_layers = 0
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not progress):
        prompt, trace = model.prompt.trace(x)
        logits = model.classify(x + prompt)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
        zeros += int((prompt == 0).sum())
        entries += prompt.numel()
        if generator is not None:
            for k, v in spiking_layer_stats(generator, trace.input_spikes, list(trace.layer_spikes)).items():
                sums[k] += v
            n_layers = len(trace.layer_spikes)
    result = {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1), "n": total,
              "prompt_sparsity": zeros / max(entries, 1)}
    if generator is not None:
        rates = [float(sums[f"spikes/{k}"] / sums[f"neuron_steps/{k}"]) for k in range(n_layers)]
        spikes = sum(float(sums[f"spikes/{k}"]) for k in range(n_layers))
        steps = sum(float(sums[f"neuron_steps/{k}"]) for k in range(n_layers))
        result.update({
            "firing_rate": {"per_layer": rates, "overall": spikes / steps},
            "spikes_per_image": spikes / total,
            "input_spikes_per_image": float(sums["input_spikes"]) / total,
            "snn_synops_per_image": sum(float(sums[f"synops/{k}"]) for k in range(n_layers)) / total,
            "snn_synops_per_layer": [float(sums[f"synops/{k}"]) / total for k in range(n_layers)],
            "snn_synops_kind": "AC" if all(float(sums[f"synops_not_acs/{k}"]) == 0.0
                                           for k in range(n_layers)) else "MAC",
        })
    return result
