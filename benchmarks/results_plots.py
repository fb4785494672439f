"""The figures of docs/results.md, drawn from the benchmark JSON (matplotlib, PNG, written atomically)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lorsp.plumbing.fileio import atomic_write  # noqa: E402

METHOD_STYLE = {"none": ("linear probe", "s", "C7"), "vp": ("VP", "v", "C2"), "lorvp": ("LoR-VP", "o", "C1"),
                "lorsp": ("LoRSP", "*", "C0"), "smm": ("SMM", "D", "C3")}


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically, and close it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    pyplot().close(fig)
    return Path(path)


def per_dataset_panels(datasets: list[str]) -> tuple[Any, Any]:
    """A figure with one square panel per data set in a row, and its axes (``axes[0]``, in order)."""
    return pyplot().subplots(1, len(datasets), figsize=(3.2 * len(datasets), 3.2), squeeze=False)


def finish_params_figure(fig: Any, axes: Any, datasets: list[str], xlabel: str, title: str,
                         path: str | Path) -> Path:
    """Log parameter axes titled by data set, one legend below, ``title`` above; the figure written to ``path``."""
    for ax, dataset in zip(axes[0], datasets):
        ax.set_xscale("log")
        ax.set(title=dataset, xlabel=xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.suptitle(title, fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(len(labels), 1), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return save_figure(fig, path)


def accuracy_vs_params(table: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """Test accuracy (mean +- std) against trainable prompt parameters, one panel per dataset."""
    datasets = list(table)
    fig, axes = per_dataset_panels(datasets)
    for ax, dataset in zip(axes[0], datasets):
        for spec, s in table[dataset].items():
            name = spec.partition(":")[0]
            label, marker, color = METHOD_STYLE.get(name, (spec, "x", "k"))
            if name != spec:
                label = f"{label} ({spec.partition(':')[2]})"
                if "gate=" in spec or "sparsity-weight=" in spec:
                    color = "C4"
            x = max(s["params"]["prompt"], 1)
            ax.errorbar(x, 100 * s["test_accuracy_mean"], yerr=100 * s["test_accuracy_std"], fmt=marker,
                        color=color, label=label, capsize=3, markersize=8)
    return finish_params_figure(fig, axes, datasets, "prompt parameters",
                                "test accuracy against trainable prompt parameters (linear probe drawn at 1)", path)


def energy_per_method(rows: list[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Energy per image (uJ) per method at each backbone precision, the prompt's share marked."""
    plt = pyplot()
    precisions = ("fp32", "fp16", "int8")
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        label, _, color = METHOD_STYLE.get(row["method"].partition(":")[0], (row["method"], "x", "k"))
        xs = [k + (i - (len(rows) - 1) / 2) * width for k in range(len(precisions))]
        total = [row["total_nj"][p] / 1e3 for p in precisions]
        ax.bar(xs, total, width, color=color, label=label)
        for x, p, t in zip(xs, precisions, total):
            extra = (row["total_nj"][p] - row["backbone_nj"][p]) / 1e3
            ax.annotate(f"+{extra * 1e3:.0f} nJ", (x, t), ha="center", va="bottom", fontsize=6, rotation=90,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xticks(range(len(precisions)), [f"backbone {p}" for p in precisions])
    ax.set(ylabel="energy per image (uJ, log)", title=title + " (labels: prompt's share)")
    top = max(row["total_nj"]["fp32"] for row in rows) / 1e3
    ax.set_ylim(top=top * 4)
    ax.legend(fontsize=8, ncol=len(rows), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def robustness_drop(results: list[dict[str, Any]], path: str | Path) -> Path:
    """Mean accuracy drop under corruption (points) per method, one group per dataset."""
    plt = pyplot()
    groups = [(d, m) for r in results for d, m in r["table"].items()]
    fig, ax = plt.subplots(figsize=(1.0 + 2.2 * len(groups), 3.2))
    methods = list(groups[0][1])
    width = 0.8 / len(methods)
    for i, spec in enumerate(methods):
        label, _, color = METHOD_STYLE.get(spec.partition(":")[0], (spec, "x", "k"))
        means = [100 * g[1][spec]["mean_drop"]["mean"] for g in groups]
        stds = [100 * g[1][spec]["mean_drop"]["std"] for g in groups]
        xs = [k + (i - (len(methods) - 1) / 2) * width for k in range(len(groups))]
        ax.bar(xs, means, width, yerr=stds, capsize=2, color=color, label=label)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups])
    ax.set(ylabel="accuracy drop (points)", title="clean minus corrupted (noise, blur, contrast; 3 severities)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def param_curve(points: dict[str, dict[str, list[tuple[int, float]]]], path: str | Path) -> Path:
    """Test accuracy against trained prompt parameters, one panel per data set: LoR-VP at its ranks and LoRSP
    at its sizes, each a line through its points (``{dataset: {"lorvp": [(params, accuracy %)], "lorsp":
    [...]}}``, results_targets.param_points)."""
    datasets = list(points)
    fig, axes = per_dataset_panels(datasets)
    for ax, dataset in zip(axes[0], datasets):
        for name in ("lorvp", "lorsp"):
            if points[dataset][name]:
                label, marker, color = METHOD_STYLE[name]
                x, y = zip(*points[dataset][name])
                ax.plot(x, y, marker=marker, color=color, label=label, markersize=7)
    return finish_params_figure(fig, axes, datasets, "trained prompt parameters",
                                "test accuracy against trained prompt parameters", path)
