"""Collect what docs/results.md is made from into docs/data/results/: small JSON, committed with the doc.

    python benchmarks/results_data.py       # reads runs/..., writes docs/data/results/
    python benchmarks/results_doc.py        # rebuilds docs/results.md from docs/data/results/ alone
    python benchmarks/results_data.py --speed-only    # after make bench: only its JSON, into bench/

``make results`` runs both after the benchmarks. The data folder mirrors what exists: an input that is
missing is not collected, and its copy from an earlier collect is removed (every JSON file of the folder
that this collect did not write goes); when no input exists at all it refuses and leaves the folder as
it is. Every file is written atomically, and only when its content changed. Layout, fixed names:

    baselines.json lr_select.json ablation.json digit_tries.json target_select.json sweep.json few_shot.json
    gate_usage.json deployment.json
    energy_sweep.json                    the benchmarks' JSON, key order kept (the doc's order), indent 1
    backbone-<k>-<backbone>.json         the k-th table of --other-backbones (k from 1, in their order)
    robustness/<name>.json               each file of the --robustness glob
    bench/<name>.json                    make bench's JSON (train_speed.json, onnx_latency.json, ...)
    seeds/<table stem>/<dataset>/<method tag>/seed<k>.json
                                         each seed's metrics.json of every cell of the accuracy tables
                                         (baselines, other backbones, ablation, digit_tries, target_select), without
                                         the bulky keys of SLIM_DROPPED, keys sorted

Relative paths, the options' and the ``--out`` recorded in each run's command, are taken from ``--root``
(the repository root unless told).
"""
from __future__ import annotations

import argparse
import glob
import json
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import parse_method  # noqa: E402
from benchmarks.output import fail  # noqa: E402
from lorsp.plumbing.fileio import atomic_write  # noqa: E402

DATA = ROOT / "docs" / "data" / "results"
SINGLE = {"baselines": ("baselines.json", "runs/main/results.json"),
          "lr_select": ("lr_select.json", "runs/lr-select/lr_select.json"),
          "ablation": ("ablation.json", "runs/main/ablation.json"),
          "digit_tries": ("digit_tries.json", "runs/main/digit-tries.json"),
          "target_select": ("target_select.json", "runs/main/target-select.json"),
          "sweep": ("sweep.json", "runs/main-sweep/sweep.json"),
          "few_shot": ("few_shot.json", "runs/few-shot/few_shot.json"),
          "gate_usage": ("gate_usage.json", "runs/gate-usage/gate_usage.json"),
          "diagnostics": ("diagnostics.json", "runs/diagnostics/diagnostics.json"),
          "deployment": ("deployment.json", "runs/deployment/deployment.json"),
          "energy_sweep": ("energy_sweep.json", "runs/energy-sweep/energy_sweep.json")}
"""Option (its dest) -> (name in the data folder, default input) of each benchmark JSON of one file."""
ACCURACY_TABLES = ("baselines", "ablation", "digit_tries", "target_select")
"""The single tables whose cells get their seeds' metrics.json collected (and every other backbone's)."""
OTHER_BACKBONES = ("runs/baselines-lite2/results.json", "runs/baselines-lite1/results.json")
ROBUSTNESS = "runs/robustness/*.json"
SPEED_DIR = "runs/bench"
SPEED_FILES = {"train": "train_speed", "onnx": "onnx_latency", "onnx_nospin": "onnx_latency_nospin",
               "fastsim": "fastsim", "cosim": "cosim_throughput"}
"""Key in results_doc's speed section -> file stem of make bench's JSON."""
SLIM_DROPPED = ("history", "versions")
"""Keys of a run's metrics.json left out of the collected copy: the per-epoch curves and the package
versions (bulky; nothing in docs/results.md or its figures reads them; the commit and machine stay)."""


# --------------------------------------------------------------------------- where things are
def resolve(path: str | Path, root: Path = ROOT) -> Path:
    """``path``, relative ones taken from ``root``."""
    path = Path(path)
    return path if path.is_absolute() else root / path


def run_dir(summary: dict[str, Any], settings: dict[str, Any], dataset: str, spec: str, seed: int,
            root: Path = ROOT) -> Path:
    """The folder of one seed's run of a table cell: the ``--out`` of its recorded command (``seedS``
    for the seed), else ``OUT/<dataset>/<tag>/seed<k>`` of the table's settings; relative to ``root``."""
    argv = shlex.split(summary.get("command", ""))
    if "--out" in argv[:-1]:
        out = argv[argv.index("--out") + 1]
        return resolve(out[: -len("seedS")] + f"seed{seed}" if out.endswith("seedS") else out, root)
    return resolve(Path(settings.get("out", "runs/baselines")) / dataset / parse_method(spec)[2] / f"seed{seed}", root)


def seed_file(runs: Path, dataset: str, spec: str, seed: int) -> Path:
    """Where the collected metrics.json of one seed of a table cell lies under a table's ``runs`` folder."""
    return runs / dataset / parse_method(spec)[2] / f"seed{seed}.json"


def collected_runs(table: Path) -> Path | None:
    """The folder of a collected table's seed files (``seeds/<stem>/`` beside it), None if there is none."""
    runs = table.parent / "seeds" / table.stem
    return runs if runs.is_dir() else None


def data_inputs(data: Path) -> dict[str, Any]:
    """results_doc's inputs inside a data folder: option dest -> path (a list for other backbones, a glob
    for robustness, a folder for speed)."""
    return {**{dest: str(data / name) for dest, (name, _) in SINGLE.items()},
            "other_backbones": sorted(glob.glob(str(data / "backbone-*.json")), key=backbone_position),
            "robustness": str(data / "robustness" / "*.json"), "speed_dir": str(data / "bench")}


def backbone_position(path: str) -> int:
    """k of ``backbone-<k>-<backbone>.json``: the other backbones keep the order they were given in."""
    return int(Path(path).name.split("-")[1])


# --------------------------------------------------------------------------- collecting
def slim(metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's metrics.json without SLIM_DROPPED."""
    return {k: v for k, v in metrics.items() if k not in SLIM_DROPPED}


def seed_copies(table: dict[str, Any], runs: Path, root: Path) -> dict[Path, dict[str, Any]]:
    """Collected path -> slimmed metrics.json of every seed of every cell of ``table`` whose run has one."""
    copies = {}
    for dataset, by_spec in table["table"].items():
        for spec, summary in by_spec.items():
            for seed in summary.get("seeds", []):
                source = run_dir(summary, table["settings"], dataset, spec, seed, root) / "metrics.json"
                if source.exists():
                    copies[seed_file(runs, dataset, spec, seed)] = slim(json.loads(source.read_text()))
    return copies


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")


def speed_copies(speed_dir: Path, data: Path) -> dict[Path, tuple[Any, bool]]:
    """make bench's JSON in ``speed_dir`` -> their places in ``data``/bench."""
    sources = [speed_dir / f"{stem}.json" for stem in SPEED_FILES.values()]
    return {data / "bench" / s.name: (read_json(s), False) for s in sources if s.exists()}


def plan(args: argparse.Namespace) -> dict[Path, tuple[Any, bool]]:
    """Every file of the data folder this collect writes: path -> (content, whether its keys are sorted)."""
    root = Path(args.root)
    data = resolve(args.data, root)
    if args.speed_only:
        return speed_copies(resolve(args.speed_dir, root), data)
    tables: dict[str, Path] = {name: resolve(getattr(args, dest), root) for dest, (name, _) in SINGLE.items()}
    accuracy = [SINGLE[dest][0] for dest in ACCURACY_TABLES]
    for k, path in enumerate(args.other_backbones, start=1):
        source = resolve(path, root)
        if source.exists():
            name = f"backbone-{k}-{read_json(source)['settings']['backbone']}.json"
            tables[name] = source
            accuracy.append(name)
    files: dict[Path, tuple[Any, bool]] = {}
    for name, source in tables.items():
        if source.exists():
            content = read_json(source)
            files[data / name] = (content, False)   # tables keep their order: it is the doc's order
            if name in accuracy:
                runs = data / "seeds" / Path(name).stem
                files.update({p: (m, True) for p, m in seed_copies(content, runs, root).items()})
    for source in sorted(glob.glob(str(resolve(args.robustness, root)))):
        files[data / "robustness" / Path(source).name] = (read_json(Path(source)), False)
    return files | speed_copies(resolve(args.speed_dir, root), data)


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds it; whether it wrote."""
    if path.exists() and path.read_text() == text:
        return False
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return True


def remove_stale(data: Path, keep: set[Path]) -> list[Path]:
    """Remove every JSON file under ``data`` not in ``keep``, and the folders left empty; the removed files."""
    stale = sorted(p for p in data.rglob("*.json") if p not in keep)
    for path in stale:
        path.unlink()
    for folder in sorted((p for p in data.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    return stale


def collect(args: argparse.Namespace) -> tuple[int, int, int]:
    """Mirror the inputs into ``args.data``: (files written, unchanged, removed)."""
    files = plan(args)
    data = resolve(args.data, Path(args.root))
    if not files:
        fail(f"no benchmark output found from {args.root}; {data} left as it is")
    written = sum(write_if_changed(path, json.dumps(content, indent=1, sort_keys=sort) + "\n")
                  for path, (content, sort) in files.items())
    removed = remove_stale(data / "bench" if args.speed_only else data, set(files))
    return written, len(files) - written, len(removed)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for dest, (_, default) in SINGLE.items():
        p.add_argument("--" + dest.replace("_", "-"), dest=dest, default=default)
    p.add_argument("--other-backbones", nargs="*", default=list(OTHER_BACKBONES),
                   help="accuracy tables of other backbones (baselines.py JSON)")
    p.add_argument("--robustness", default=ROBUSTNESS, help="glob")
    p.add_argument("--speed-dir", default=SPEED_DIR)
    p.add_argument("--speed-only", action="store_true",
                   help="collect only make bench's JSON (--speed-dir) into DATA/bench, the rest left as it is")
    p.add_argument("--root", default=str(ROOT), help="relative paths are taken from here (default: the repository)")
    p.add_argument("--data", default=str(DATA), help="the data folder written (default: docs/data/results)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    written, unchanged, removed = collect(args)
    print(f"{resolve(args.data, Path(args.root))}: {written} written, {unchanged} unchanged, {removed} stale removed")


if __name__ == "__main__":
    main()
