"""Evaluation: accuracy, loss and, for prompts that have them, sparsity and spike statistics.

Per-instance prompt figures (issue 16): the *zero mask* of an image is the ``(L, L)`` map of
pixels where its prompt is exactly zero in every channel. :func:`unique_mask_share` is the share
of images whose zero mask no other image has; :func:`mask_flip_share` the mean share of pixels
whose zero/non-zero state differs between two distinct images (seeded random pairs). A prompt
shared by all images (``vp``, ``lorvp``, ``none``) scores 0 on both, and so does a dense one.
"""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from lorsp.plumbing.loading import make_loader
from lorsp.snn_stats import is_spike_like, synops_per_sample


def spiking_layer_stats(generator: nn.Module, input_spikes: torch.Tensor,
                        layer_spikes: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-batch sums for a ``Linear -> Leaky -> ...`` generator, or a one-layer generator that counts its own
    synaptic operations (``synops_per_sample``, LoRSP's pixel gates): spikes, neuron-steps, synops."""
    if isinstance(generator, nn.Sequential):
        synops = [lambda x, lin=lin: synops_per_sample(x, lin.weight)
                  for lin in generator if isinstance(lin, nn.Linear)]
    else:
        synops = [generator.synops_per_sample]
    inputs = [input_spikes, *layer_spikes[:-1]]
    out: dict[str, torch.Tensor] = {}
    for k, (count, x_in, spk) in enumerate(zip(synops, inputs, layer_spikes)):
        out[f"spikes/{k}"] = spk.sum()
        out[f"neuron_steps/{k}"] = torch.tensor(float(spk.numel()))
        out[f"synops/{k}"] = count(x_in).sum()
        out[f"synops_not_acs/{k}"] = torch.tensor(float(not is_spike_like(x_in)))  # batches with graded input
    out["input_spikes"] = input_spikes.sum()
    return out


INSTANCE_IMAGES = 500
"""Images (the first of the split, in its fixed order) the per-instance figures of a test evaluation use."""
FLIP_PAIRS = 2000
"""Random pairs of distinct images :func:`mask_flip_share` averages over."""


def zero_masks(prompt: torch.Tensor) -> torch.Tensor:
    """The zero masks ``(N, L, L)`` (bool, on the CPU) of a prompt batch ``(N, C, L, L)``: pixels whose
    prompt is exactly zero in all ``C`` channels."""
    if prompt.dim() != 4:
        raise ValueError(f"zero_masks takes a prompt batch (N, C, L, L), got shape {tuple(prompt.shape)}")
    return (prompt == 0).all(dim=1).cpu()


def unique_mask_share(masks: torch.Tensor) -> float:
    """The share of the ``N`` masks ``(N, L, L)`` that no other mask equals (exact: each mask's packed
    bytes are a dictionary key). 0.0 for fewer than 2 masks (no image to differ from)."""
    n = len(masks)
    if n < 2:
        return 0.0
    packed = np.packbits(masks.reshape(n, -1).numpy().astype(bool), axis=1)
    counts = Counter(row.tobytes() for row in packed)
    return sum(1 for row in packed if counts[row.tobytes()] == 1) / n


def mask_pairs(n: int, pairs: int = FLIP_PAIRS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``pairs`` random ordered pairs ``(i, j)`` of distinct indices below ``n`` (uniform, with
    replacement), from ``numpy.random.default_rng(seed)``: the same pairs for the same ``n`` whatever
    the training seed."""
    if n < 2:
        raise ValueError(f"pairs of distinct images need at least 2 images, got {n}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=pairs)
    j = rng.integers(0, n - 1, size=pairs)
    return i, j + (j >= i)  # j skips i: uniform over the n - 1 others


def mask_flip_share(masks: torch.Tensor, pairs: int = FLIP_PAIRS, seed: int = 0, chunk: int = 250) -> float:
    """The mean, over the :func:`mask_pairs` of the ``N`` masks ``(N, L, L)``, of the share of pixels
    whose zero/non-zero state differs between the two images of a pair. 0.0 for fewer than 2 masks."""
    n = len(masks)
    if n < 2 or pairs < 1:
        return 0.0
    i, j = (torch.from_numpy(a) for a in mask_pairs(n, pairs, seed))
    flat = masks.reshape(n, -1).bool()
    differing = 0
    for start in range(0, pairs, chunk):
        a, b = i[start:start + chunk], j[start:start + chunk]
        differing += int((flat[a] != flat[b]).sum())
    return differing / (pairs * flat.shape[1])


def instance_figures(masks: torch.Tensor, pairs: int = FLIP_PAIRS, seed: int = 0) -> dict[str, float | int]:
    """The per-instance keys of ``metrics.json`` for the zero masks ``(N, L, L)`` of ``N`` images."""
    return {"prompt_unique_mask_share": unique_mask_share(masks),
            "prompt_mask_flip_share": mask_flip_share(masks, pairs, seed),
            "prompt_instance_images": len(masks)}


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: Dataset, batch_size: int = 256,
             desc: str | None = None, progress: bool = True, instance_images: int = 0, workers: int = 0) -> dict:
    """Top-1 accuracy and mean cross-entropy of ``model`` on ``dataset``, plus prompt statistics.

    ``prompt_sparsity`` is the share of exactly-zero prompt entries. For spiking prompts:
    ``firing_rate`` per generator layer and overall (spikes / neuron-steps),
    ``spikes_per_image`` (generator neurons), ``input_spikes_per_image`` (the encoding) and
    ``snn_synops_per_image`` (NeuroBench synaptic operations, all layers).

    ``workers`` loader processes read the images (:func:`lorsp.plumbing.loading.make_loader`); the batches go to
    the model's device.

    With ``instance_images > 0``, also the :func:`instance_figures` of the zero masks of the first
    ``instance_images`` images of ``dataset`` (all of them if it has fewer): ``prompt_unique_mask_share``,
    ``prompt_mask_flip_share`` and ``prompt_instance_images``. Their zero pixel is zero in all channels;
    ``prompt_sparsity`` counts entries: the same share wherever zeros span all channels (LoRSP's
    gates, VP's centre, no prompt).
    """
    model.eval()
    device = next(model.parameters()).device  # the batches go where the model is
    loader = make_loader(dataset, batch_size, seed=0, workers=workers, device=device)
    correct, total, loss_sum, zeros, entries = 0, 0, 0.0, 0, 0
    sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.tensor(0.0, dtype=torch.float64))
    generator = getattr(model.prompt, "spiking_generator", None)
    n_layers = 0
    masks: list[torch.Tensor] = []
    kept = 0
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not progress):
        x, y = x.to(device), y.to(device)
        prompt, trace = model.prompt.trace(x)
        logits = model.classify(x + prompt)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
        zeros += int((prompt == 0).sum())
        entries += prompt.numel()
        if kept < instance_images:
            masks.append(zero_masks(prompt[: instance_images - kept]))
            kept += len(masks[-1])
        if generator is not None:
            for k, v in spiking_layer_stats(generator, trace.input_spikes, list(trace.layer_spikes)).items():
                sums[k] += v.detach().cpu()
            n_layers = len(trace.layer_spikes)
    result = {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1), "n": total,
              "prompt_sparsity": zeros / max(entries, 1)}
    if instance_images > 0:
        result.update(instance_figures(torch.cat(masks) if masks else torch.zeros(0, 0, 0, dtype=torch.bool)))
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
