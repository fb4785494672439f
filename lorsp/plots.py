"""Figures for people (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

from lorsp.plumbing.fileio import atomic_write


def plot_training_curves(history: list[dict], path: str | Path, title: str) -> Path:
    """Train loss and train/val accuracy per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax1.set(xlabel="epoch", ylabel="train loss")
    ax2.plot(epochs, [h["train_accuracy"] for h in history], marker="o", label="train")
    ax2.plot(epochs, [h["val_accuracy"] for h in history], marker="o", label="val")
    ax2.set(xlabel="epoch", ylabel="accuracy")
    ax2.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return Path(path)
