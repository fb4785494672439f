"""Collect what docs/results.md is made from into docs/data/results/: small JSON, committed with the doc.

    python benchmarks/results_data.py       # reads runs/..., writes docs/data/results/
    python benchmarks/results_doc.py        # rebuilds docs/results.md from docs/data/results/ alone
    python benchmarks/results_data.py --speed-only    # after make bench: only its JSON, into bench/

    # one accuracy table from several (docs/results.md's main table: the peers' table, the new default's,
    # its dense twin's and its static mask's), the old default's rows of the first taken out; the diagnostics likewise
    python benchmarks/results_data.py --keep-missing \
        --baselines docs/data/results/baselines.json runs/main/default.json runs/main/twin.json runs/main/static-seed0.json \
        --diagnostics docs/data/results/diagnostics.json runs/queue/default-diagnostics.json \
        --drop-method docs/data/results/baselines.json lorsp:prompt-lr=0.1,rank=8 \
        --drop-method docs/data/results/diagnostics.json lorsp-prompt-lr-0.1_rank-8

``make results`` runs both after the benchmarks. The data folder mirrors what exists: an input that is
missing is not collected, and its copy from an earlier collect is removed (every JSON file of the folder
that this collect did not write goes), unless ``--keep-missing`` keeps the copy already collected (with
its seed files); when no input exists at all it refuses and leaves the folder as it is.

``--baselines``, ``--diagnostics`` and ``--param-figure`` take several files, and each value of
``--other-backbones`` several joined by ``+``: their rows are assembled into one table by
benchmarks/results_union.py (same protocol, each row from one file, each row naming its
source table and command). ``--drop-method FILE METHOD`` takes a method's rows out of one of those files
first: how a newer table's rows replace an older's (there is no implicit rule: a row found in two files is
refused). With ``--keep-missing``, name every input whose default path under runs/ holds a file of another
experiment (e.g. ``--lr-select docs/data/results/lr_select.json``), or that file is collected. Every file is written atomically, and only when its content changed. Layout, fixed names:

    baselines.json lr_select.json ablation.json digit_tries.json target_select.json sweep.json few_shot.json
    gate_usage.json diagnostics.json deployment.json energy_sweep.json param_figure.json pixel_energy.json
    step_cost.json                       the benchmarks' JSON (or the table assembled from several), key order
                                         kept (the doc's order), indent 1
    backbone-<k>-<backbone>.json         the k-th table of --other-backbones (k from 1, in their order)
    robustness/<name>.json               each file of the --robustness glob
    bench/<name>.json                    make bench's JSON (train_speed.json, onnx_latency.json, ...)
    seeds/<table stem>/<dataset>/<method tag>/seed<k>.json
                                         each seed's metrics.json of every cell of the accuracy tables
                                         (baselines, other backbones, ablation, digit_tries, target_select), without
                                         the bulky keys of SLIM_DROPPED, keys sorted; a row read from a collected
                                         table keeps the copy collected beside it (its runs may be gone or
                                         trained again since), others are copied from their runs

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
from benchmarks.results_union import ACCURACY, DIAGNOSTICS, UnionError, assemble  # noqa: E402
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
          "energy_sweep": ("energy_sweep.json", "runs/energy-sweep/energy_sweep.json"),
          "param_figure": ("param_figure.json", "runs/main/param-figure-seed0.json"),
          "pixel_energy": ("pixel_energy.json", "runs/pixel-energy/pixel-energy.json"),
          "step_cost": ("step_cost.json", "runs/step-cost/train_speed.json")}
"""Option (its dest) -> (name in the data folder, default input) of each benchmark JSON of the data folder."""
MULTI = {"baselines": ACCURACY, "diagnostics": DIAGNOSTICS, "param_figure": ACCURACY}
"""The options of SINGLE that take several files, assembled into one table (benchmarks/results_union.py)."""
ACCURACY_TABLES = ("baselines", "ablation", "digit_tries", "target_select")
"""The single tables whose cells get their seeds' metrics.json collected (and every other backbone's)."""
OTHER_BACKBONES = ("runs/baselines-lite2/results.json", "runs/baselines-lite1/results.json")
BACKBONE_JOIN = "+"
"""Joins the files of one value of --other-backbones assembled into that backbone's table."""
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


def seed_copies(table: dict[str, Any], runs: Path, root: Path,
                origins: dict[tuple, str] | None = None) -> dict[Path, dict[str, Any]]:
    """Collected path -> slimmed metrics.json of every seed of every cell of ``table``: the copy collected
    beside the input its row was read from (``origins``: (dataset, method tag) -> that input, results_union's)
    where there is one (a run folder of the same name may since hold another run), else its run's own."""
    copies = {}
    for dataset, by_spec in table["table"].items():
        for spec, summary in by_spec.items():
            origin = (origins or {}).get((dataset, parse_method(spec)[2]))
            collected = collected_runs(resolve(origin, root)) if origin else None
            for seed in summary.get("seeds", []):
                source = run_dir(summary, table["settings"], dataset, spec, seed, root) / "metrics.json"
                kept = seed_file(collected, dataset, spec, seed) if collected else None
                if kept is not None and kept.exists():   # collected with the table: the run its row was made of
                    copies[seed_file(runs, dataset, spec, seed)] = read_json(kept)
                elif source.exists():
                    copies[seed_file(runs, dataset, spec, seed)] = slim(json.loads(source.read_text()))
    return copies


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")


def speed_copies(speed_dir: Path, data: Path, keep_missing: bool = False) -> dict[Path, tuple[Any, bool]]:
    """make bench's JSON in ``speed_dir`` -> their places in ``data``/bench (with ``keep_missing``, a file
    absent there keeps its copy in ``data``/bench)."""
    files = {}
    for stem in SPEED_FILES.values():
        source, copy = speed_dir / f"{stem}.json", data / "bench" / f"{stem}.json"
        if source.exists() or (keep_missing and copy.exists()):
            files[copy] = (read_json(source if source.exists() else copy), False)
    return files


def data_relative(path: Path, root: Path) -> str:
    """``path`` as an input name: relative to ``root`` where it lies below it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def table_inputs(args: argparse.Namespace, dest: str, data: Path) -> list[str]:
    """The input files of one option of SINGLE that exist ([] for none); with ``--keep-missing`` the data
    folder's own copy stands in for inputs that are all absent. Refused when only some of several exist."""
    root = Path(args.root)
    named = getattr(args, dest)
    named = named if dest in MULTI else [named]
    present = [p for p in named if resolve(p, root).exists()]
    if present and len(present) < len(named):
        fail(f"--{dest.replace('_', '-')}: {', '.join(p for p in named if p not in present)} does not exist "
             f"(the other files of the option do)")
    copy = data / SINGLE[dest][0]
    if not present and args.keep_missing and copy.exists():
        return [data_relative(copy, root)]
    return present


def assembled(args: argparse.Namespace, dest: str, paths: list[str]) -> tuple[dict[str, Any], dict[tuple, str]]:
    """The table of option ``dest`` (a SINGLE one, or ``other_backbones`` for one backbone's) from its input
    ``paths``: the one file, or the union of several (with the ``--drop-method`` pairs that name one of
    them); and for accuracy tables each row's input ((dataset, method tag) -> path)."""
    root = Path(args.root)
    inputs = [(p, read_json(resolve(p, root))) for p in paths]
    kind = ACCURACY if dest == "other_backbones" else MULTI.get(dest)
    if kind is None:
        table = inputs[0][1]
        return table, ({key: paths[0] for key in row_keys(table)} if dest in ACCURACY_TABLES else {})
    drops = [(f, m) for f, m in args.drop_method if f in paths]
    try:
        return assemble(inputs, drops, kind)
    except UnionError as e:
        fail(f"--{dest.replace('_', '-')}: {e}")


def backbone_inputs(args: argparse.Namespace, data: Path) -> list[tuple[int, list[str]]]:
    """The other backbones' input files, in their order: (k, files) for the k-th, its files those joined by
    ``+`` in its value (several are assembled into one table); with ``--keep-missing`` the k-th one whose
    files are all absent keeps its collected copy (``backbone-<k>-*.json``). Refused when only some of one
    backbone's files exist."""
    root = Path(args.root)
    found = []
    for k, value in enumerate(args.other_backbones, start=1):
        named = value.split(BACKBONE_JOIN)
        present = [p for p in named if resolve(p, root).exists()]
        if present and len(present) < len(named):
            fail(f"--other-backbones {value}: {', '.join(p for p in named if p not in present)} does not exist "
                 f"(the other files of that backbone do)")
        kept = sorted(data.glob(f"backbone-{k}-*.json"))
        if present:
            found.append((k, present))
        elif args.keep_missing and kept:
            found.append((k, [data_relative(kept[0], root)]))
    return found


def plan(args: argparse.Namespace) -> dict[Path, tuple[Any, bool]]:
    """Every file of the data folder this collect writes: path -> (content, whether its keys are sorted)."""
    root = Path(args.root)
    data = resolve(args.data, root)
    if args.speed_only:
        return speed_copies(resolve(args.speed_dir, root), data)
    inputs = {dest: table_inputs(args, dest, data) for dest in SINGLE}
    backbones = backbone_inputs(args, data)
    named = {p for dest in MULTI for p in inputs[dest]} | {p for _, paths in backbones for p in paths}
    for path, method in args.drop_method:
        if path not in named:
            fail(f"--drop-method {path} {method}: {path} is not an input of --baselines, --diagnostics, "
                 f"--param-figure or --other-backbones that exists")
    tables = {SINGLE[dest][0]: assembled(args, dest, paths) for dest, paths in inputs.items() if paths}
    accuracy = [SINGLE[dest][0] for dest in ACCURACY_TABLES]
    for k, paths in backbones:
        content, origins = assembled(args, "other_backbones", paths)
        name = f"backbone-{k}-{content['settings']['backbone']}.json"
        tables[name] = (content, origins)
        accuracy.append(name)
    files: dict[Path, tuple[Any, bool]] = {}
    for name, (content, origins) in tables.items():
        files[data / name] = (content, False)   # tables keep their order: it is the doc's order
        if name in accuracy:
            runs = data / "seeds" / Path(name).stem
            files.update({p: (m, True) for p, m in seed_copies(content, runs, root, origins).items()})
    robustness = sorted(glob.glob(str(resolve(args.robustness, root))))
    if not robustness and args.keep_missing:
        robustness = sorted(glob.glob(str(data / "robustness" / "*.json")))
    for source in robustness:
        files[data / "robustness" / Path(source).name] = (read_json(Path(source)), False)
    return files | speed_copies(resolve(args.speed_dir, root), data, args.keep_missing)


def row_keys(table: dict[str, Any]) -> list[tuple]:
    """The row keys of an accuracy table (dataset, method tag)."""
    return [key for key, _, _ in ACCURACY.rows(table)]


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
        if dest in MULTI:
            p.add_argument("--" + dest.replace("_", "-"), dest=dest, nargs="+", default=[default],
                           help="one table, or several of one protocol assembled into one")
        else:
            p.add_argument("--" + dest.replace("_", "-"), dest=dest, default=default)
    p.add_argument("--drop-method", nargs=2, action="append", default=[], metavar=("FILE", "METHOD"),
                   help="take METHOD's rows (a spec or run tag) out of FILE, one of the files of --baselines, "
                        "--diagnostics or --param-figure, before they are assembled (repeatable)")
    p.add_argument("--keep-missing", action="store_true",
                   help="an input that does not exist keeps its copy already in the data folder (and its seed "
                        "files) instead of being removed")
    p.add_argument("--other-backbones", nargs="*", default=list(OTHER_BACKBONES),
                   help="accuracy tables of other backbones (baselines.py JSON), one value per backbone; files "
                        f"joined by '{BACKBONE_JOIN}' in one value are assembled into that backbone's table")
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
