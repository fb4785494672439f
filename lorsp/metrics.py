"""Evaluation: accuracy and loss of a model on a dataset."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: Dataset, batch_size: int = 256,
             desc: str | None = None, progress: bool = True) -> dict[str, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` on ``dataset``."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    correct, total, loss_sum = 0, 0, 0.0
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not progress):
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    return {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1), "n": total}
