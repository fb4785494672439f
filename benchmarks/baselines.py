"""Train several methods on several datasets under the one protocol and tabulate them.

    python benchmarks/baselines.py --datasets mnist-5k animal-shape --methods none vp lorvp \
        --seeds 0 --out runs/baselines

Each run is ``lorsp-train`` in a subprocess (its own ``OUT/<dataset>/<method>/seed<k>``). A finished run is
reused when it was trained under the same config by the code running now (the same commit, neither side
modified, :func:`same_code`); else it is trained again, its folder replaced, unless ``--reuse-stale``: then it
is reused and listed, with its commit, in the table (docs/protocol.md, "Which finished runs are reused").
With ``--jobs N > 1`` or ``--engine slurm`` the runs are submitit jobs (:mod:`benchmarks.engine`): N at a time
here, or a SLURM job array. The table (mean +- std over seeds of val-selected test accuracy, prompt and head
parameters) is written as JSON and Markdown into OUT.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, NoReturn, Sequence, TypeVar

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.engine import EngineOptions, add_engine_args, engine_options, run_jobs  # noqa: E402
from benchmarks.output import fail, run_record, write_tables  # noqa: E402
from lorsp.plumbing.cli import run_cli  # noqa: E402
from lorsp.plumbing.cli_options import count, device_name  # noqa: E402
from lorsp.plumbing.errors import LorspError  # noqa: E402
from lorsp.plumbing.fileio import staging_dir  # noqa: E402
from lorsp.plumbing.provenance import git_commit  # noqa: E402

if TYPE_CHECKING:
    from lorsp.train import TrainConfig

METHOD_LABELS = {"none": "linear probe", "vp": "VP (Bahng et al.)", "lorvp": "LoR-VP", "lorsp": "LoRSP",
                 "smm": "SMM"}


def trained_model(runs: str | Path, dataset: str, tag: str, seed: int) -> Path:
    """``RUNS/<dataset>/<tag>/seed<k>/model.pt`` of a finished run, or a one-line exit if it is missing."""
    path = Path(runs) / dataset / tag / f"seed{seed}" / "model.pt"
    if not path.exists():
        fail(f"{path} is missing: train it with benchmarks/baselines.py first")
    return path


def restart_options(out: Path) -> list[str]:
    """How to go on where an interrupted benchmark left ``out``: resume its ``OUT.partial/last.pt``
    (same result as an uninterrupted run, docs/protocol.md), or start again over a stage that
    has no checkpoint yet; nothing for a fresh run."""
    stage = staging_dir(out)
    if (stage / "last.pt").exists():
        return ["--resume", str(stage / "last.pt")]
    return ["--force"] if stage.exists() else []


class RunFailed(LorspError):
    """A ``lorsp-train`` subprocess exited with an error (its own message is printed above)."""


DIRTY = "+dirty"
"""The suffix :func:`lorsp.plumbing.provenance.git_commit` gives a commit whose checkout was modified."""


_RUNNING: dict[str, str] = {}
""":func:`running_commit`'s value once read (a plain dict: a function of a benchmark run as a script is pickled
by value into its submitit jobs, which a cached wrapper would not survive)."""


def running_commit() -> str:
    """The commit of the code running this benchmark (:func:`~lorsp.plumbing.provenance.git_commit`, read once)."""
    if "commit" not in _RUNNING:
        _RUNNING["commit"] = git_commit()
    return _RUNNING["commit"]


def same_code(made_at: str | None, running: str) -> bool:
    """Whether a run made at commit ``made_at`` is a run of the code ``running``: the same commit, known, and
    neither modified (``+dirty``: what a modified checkout trained cannot be told apart from other code)."""
    return made_at == running and running not in ("", "unknown") and not running.endswith(DIRTY)


@dataclass(frozen=True)
class Run:
    """One ``lorsp-train`` run of a benchmark: the folder it fills and its arguments."""

    out: Path
    argv: tuple[str, ...]  # lorsp-train's arguments, without the program name
    config: dict | None = field(default=None, compare=False)  # the config lorsp-train will save, as JSON
    reuse_stale: bool = field(default=False, compare=False)  # reuse a finished run whatever code made it

    @property
    def command(self) -> str:
        return " ".join(("lorsp-train", *self.argv))

    @property
    def finished(self) -> bool:
        """Its metrics.json exists (whatever config and code made it)."""
        return (self.out / "metrics.json").exists()

    @property
    def complete(self) -> bool:
        """Finished, with the planned config (a run trained before a default changed is :attr:`stale`), by the
        code running now (else it is :attr:`other_code`) unless :attr:`reuse_stale`: a run to reuse."""
        return self.finished and not self.stale and (self.reuse_stale or not self.other_code)

    @property
    def made_at(self) -> str | None:
        """The commit its metrics.json records, or None (not finished, unreadable, none recorded)."""
        try:
            commit = json.loads((self.out / "metrics.json").read_text()).get("git_commit")
        except (OSError, ValueError, AttributeError):
            return None
        return commit if isinstance(commit, str) else None

    @property
    def other_code(self) -> bool:
        """Finished by other code than the running code (:func:`same_code`: another, unknown or modified commit)."""
        return self.finished and not same_code(self.made_at, running_commit())

    @property
    def stale(self) -> bool:
        """Finished under another config than the planned one (or with no readable config.json)."""
        if not self.finished or self.config is None:
            return False
        try:
            saved = json.loads((self.out / "config.json").read_text())
            return what_defines(saved) != what_defines(self.config)
        except (OSError, ValueError, TypeError, KeyError, LorspError):
            return True


GENERAL_LEGACY = {"precision": "fp32"}
"""General lorsp-train fields added after runs were trained, with the value those runs had (``--precision``:
every run before it was fp32)."""


def what_defines(config: dict) -> dict:
    """The part of a lorsp-train config that defines its run: every general field (one added later takes its
    :data:`GENERAL_LEGACY` value), and of the prompts' options only the method's own (an option added later takes
    its declared ``legacy`` value; one the mode the options choose does not use, ``--pixel-input`` under
    ``--gate band``, defines nothing). An option removed since that holds the value it kept (a run of what the
    method still does) defines nothing; at another value it is a :class:`LorspError` (a run of removed code)."""
    from lorsp.prompts import list_prompts, option_names, options_from_config, options_in_use
    from lorsp.prompts.base import check_retired, retired_options

    every_option = {name for prompt in list_prompts() for name in option_names(prompt)}
    retired = {k: r for k, r in retired_options().items() if k not in every_option}
    for key in retired.keys() & config.keys():
        check_retired(key, config[key], retired[key], f"config {key!r}")
    general = {**GENERAL_LEGACY, **{k: v for k, v in config.items() if k not in every_option and k not in retired}}
    return {**general, **options_in_use(config["prompt"], options_from_config(config["prompt"], config))}


def check_train_argv(argv: Sequence[str]) -> "TrainConfig":
    """Refuse what ``lorsp-train`` would refuse (an unknown dataset, backbone or option, a bad value) with a
    :class:`LorspError`, without loading data: a benchmark checks all its runs before it trains any.

    Returns the run's config, as lorsp-train would build it."""
    from lorsp.backbones import list_backbones
    from lorsp.data.registry import IMAGEFOLDER_PREFIX, get_entry
    from lorsp.plumbing.device import resolve_device
    from lorsp.train import build_parser, config_from_args

    parser = build_parser()

    def refuse(message: str) -> NoReturn:
        raise LorspError(f"lorsp-train would refuse {' '.join(argv)!r}: {message}")

    parser.error = refuse  # type: ignore[method-assign]  # argparse reports every bad option through error()
    args = parser.parse_args(list(argv))
    config = config_from_args(args)  # options not typed take their declared defaults
    if not config.dataset.startswith(IMAGEFOLDER_PREFIX):
        get_entry(config.dataset)
    if config.backbone not in list_backbones() and config.weights is None:
        raise LorspError(f"unknown backbone {config.backbone!r}; offline: {', '.join(list_backbones())}")
    config.validate()
    resolve_device(args.device)  # CUDA asked for where there is none: refused before any run trains
    return config


def plan_run(dataset: str, method: str, seed: int, args: argparse.Namespace,
             extra: tuple[str, ...] = (), tag: str | None = None) -> Run:
    """The run of ``method`` (a prompt name; ``extra`` adds lorsp-train options, ``tag`` names the
    variant) on ``dataset`` under the protocol in ``args``, checked by :func:`check_train_argv`; ``--rank``
    is passed only to methods that take it."""
    from lorsp.prompts import option_names

    out = Path(args.out) / dataset / (tag or method) / f"seed{seed}"
    argv = ("--dataset", dataset, "--backbone", args.backbone, "--prompt", method,
            "--head", "lp", *(["--rank", str(args.rank)] if "rank" in option_names(method) else []),
            "--image-size", str(args.image_size),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
            "--limit-train", str(args.limit_train), "--limit-test", str(args.limit_test),
            "--seed", str(seed), *(["--prompt-lr", f"{args.prompt_lr:g}"] if args.prompt_lr else []),
            *device_options(args), *extra, "--quiet", "--out", str(out))
    config = check_train_argv(argv)
    return Run(out, argv, json.loads(json.dumps(config.to_dict())), reuse_stale=getattr(args, "reuse_stale", False))


def device_options(args: argparse.Namespace) -> list[str]:
    """``--device`` for lorsp-train where the benchmark was given one other than ``auto`` (where a run
    computes is not part of its folder: a finished run is reused wherever it was trained)."""
    device = getattr(args, "device", "auto")
    return [] if device == "auto" else ["--device", device]


def retrain_options(run: Run) -> list[str]:
    """lorsp-train's options to train ``run`` (not :attr:`Run.complete`): ``--force`` over a finished run
    (one of another config or of other code: its folder is replaced), else :func:`restart_options`."""
    return ["--force"] if run.finished else restart_options(run.out)


def why_retrained(run: Run) -> str | None:
    """One line saying why the finished ``run`` is trained again, or None when it is not finished."""
    if not run.finished:
        return None
    if run.stale:
        return f"{run.out} was trained under another config: training it again"
    return (f"{run.out} was trained at commit {run.made_at or 'unknown'}, not by the running code "
            f"({running_commit()}): training it again (--reuse-stale reuses it)")


def train_run(run: Run, jobs: int = 1) -> dict:
    """Train ``run`` in a subprocess (one thread when ``jobs > 1``), or reuse it if complete.

    Returns its metrics.json with ``command`` and ``reused`` (True when it was already complete)
    added; raises :class:`RunFailed` when lorsp-train exits with an error.
    """
    reused = run.complete
    if not reused:
        print("$", run.command, flush=True)
        single = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if jobs > 1 else {}
        restart = retrain_options(run)
        if (why := why_retrained(run)) is not None:
            print(why, flush=True)
        code = subprocess.run([sys.executable, "-m", "lorsp.train", *run.argv, *restart],
                              cwd=ROOT, env={**os.environ, **single}).returncode
        if code != 0:
            raise RunFailed(f"lorsp-train exited with code {code} for {run.out} (its message is above)")
    metrics = json.loads((run.out / "metrics.json").read_text())
    metrics["command"] = run.command
    metrics["reused"] = reused
    return metrics


T = TypeVar("T")
R = TypeVar("R")


def was_reused(result: Any) -> bool:
    """Whether ``result`` (of :func:`train_run`, or a dict carrying its ``reused``) is a run found complete."""
    return isinstance(result, dict) and bool(result.get("reused"))


def run_in(item: Any) -> Run | None:
    """The :class:`Run` an item of :func:`map_runs` trains: the item itself or the first Run in a tuple."""
    if isinstance(item, Run):
        return item
    return next((part for part in item if isinstance(part, Run)), None) if isinstance(item, tuple) else None


def map_runs(fn: Callable[[T], R], items: Iterable[T], jobs: int, desc: str = "runs",
             engine: EngineOptions | None = None) -> list[R]:
    """``[fn(item) for item in items]``, results in order: in this process with ``jobs <= 1`` on the local
    engine, else each item a submitit job (:func:`benchmarks.engine.run_jobs`, ``jobs`` at a time).

    An item whose run (:func:`run_in`) is already complete is done here, never submitted. With
    ``jobs > 1`` every run gets one thread (:func:`train_run`): on a 2-core machine two 1-thread
    runs side by side are the fastest layout measured; two 2-thread runs oversubscribe OpenMP and
    run 4-5x slower. A progress bar (stderr) counts the runs trained; a run found complete
    (:func:`was_reused`) is taken off its total, so its rate and time left are those of real training.
    """
    items = list(items)
    results: dict[int, R] = {}
    with tqdm(total=len(items), desc=desc, unit="run", smoothing=0, dynamic_ncols=True) as bar:
        def done(i: int, result: R) -> None:
            results[i] = result
            if was_reused(result):
                bar.total -= 1
                bar.refresh()
            else:
                bar.update()

        inline = engine is None or (engine.engine == "local" and jobs <= 1)
        submit = []
        for i, item in enumerate(items):
            run = run_in(item)
            if inline or (run is not None and run.complete):
                done(i, fn(item))
            else:
                submit.append(i)
        if submit:
            run_jobs(fn, [items[i] for i in submit], engine, lambda k, result: done(submit[k], result))
    return [results[i] for i in range(len(items))]


def parse_method(spec: str) -> tuple[str, tuple[str, ...], str]:
    """``lorsp:gate=rowcol,sparsity-weight=1`` -> (``lorsp``, lorsp-train options, a run tag)."""
    name, _, opts = spec.partition(":")
    extra: list[str] = []
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        extra += [f"--{key}", value]
    tag = name if not opts else f"{name}-" + opts.replace("=", "-").replace(",", "_")
    return name, tuple(extra), tag


def method_label(spec: str) -> str:
    name, _, opts = spec.partition(":")
    return METHOD_LABELS.get(name, name) + (f" ({opts})" if opts else "")


def summarise(runs: list[dict]) -> dict:
    acc = [r["test_accuracy"] for r in runs]
    return {"test_accuracy_mean": statistics.mean(acc),
            "test_accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "val_accuracy_mean": statistics.mean(r["val_accuracy"] for r in runs),
            "seeds": [r["seed"] for r in runs], "params": runs[0]["params"],
            "train_images_per_s": statistics.mean(r["train_images_per_s"] for r in runs),
            "prompt_sparsity_mean": statistics.mean(r.get("prompt_sparsity", 0.0) for r in runs),
            "firing_rate_mean": (statistics.mean(r["firing_rate"]["overall"] for r in runs)
                                 if "firing_rate" in runs[0] else None),
            "snn_synops_per_image_mean": (statistics.mean(r["snn_synops_per_image"] for r in runs)
                                          if "snn_synops_per_image" in runs[0] else None),
            "command": runs[0]["command"].replace(f"--seed {runs[0]['seed']}", "--seed S")
                                         .replace(f"/seed{runs[0]['seed']}", "/seedS")}


def stale_reuses(runs: Sequence[Run], results: Sequence[dict]) -> list[dict[str, str]]:
    """``[{"run": folder, "git_commit": its commit}]`` of each run reused though other code made it
    (``--reuse-stale``): ``results`` are :func:`train_run`'s, in the order of ``runs``."""
    return [{"run": str(run.out), "git_commit": str(result.get("git_commit", "unknown"))}
            for run, result in zip(runs, results) if was_reused(result) and run.other_code]


def stale_note(stale: Sequence[dict[str, str]], total: int, running: str) -> str:
    """The table's line on runs reused from other code (``--reuse-stale``): how many, and at which commits."""
    commits = sorted({entry["git_commit"][:12] + (DIRTY if entry["git_commit"].endswith(DIRTY) else "")
                      for entry in stale})
    return (f"Reused with --reuse-stale: {len(stale)} of {total} runs come from another commit than "
            f"{running[:12] + (DIRTY if running.endswith(DIRTY) else '')} ({', '.join(commits)}); "
            "each run and its commit: reused_stale in the JSON.")


def markdown(table: dict, args: argparse.Namespace, stale_line: str | None = None) -> str:
    """The accuracy table of ``table`` under the protocol in ``args``; ``stale_line`` (:func:`stale_note`)
    follows the protocol's note when runs were reused from other code."""
    lines = [f"Backbone {args.backbone}, {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}, "
             f"lr {args.lr}" + (f" (prompt {args.prompt_lr:g})" if getattr(args, "prompt_lr", None) else "")
             + f", {args.limit_train} training images, {args.limit_test} test images, "
             f"seeds {args.seeds}; test accuracy of the val-selected model, mean +- std over seeds; "
             "val accuracy: the selected epoch's, mean over seeds.",
             *(["", stale_line] if stale_line else []),
             "", "| dataset | method | test accuracy (%) | val accuracy (%) | prompt params | head params "
             "| zero prompt pixels (%) | firing rate |", "|---|---|---|---|---|---|---|---|"]
    for dataset, methods in table.items():
        for method, s in methods.items():
            lines.append(f"| {dataset} | {method_label(method)} | "
                         f"{100 * s['test_accuracy_mean']:.1f} +- {100 * s['test_accuracy_std']:.1f} | "
                         f"{100 * s['val_accuracy_mean']:.1f} | {s['params']['prompt']:,} | {s['params']['head']:,} | "
                         f"{'-' if method == 'none' else format(100 * s['prompt_sparsity_mean'], '.1f')} | "
                         f"{'-' if s['firing_rate_mean'] is None else format(s['firing_rate_mean'], '.3f')} |")
    lines += ["", "Commands (S = seed):", ""]
    lines += [f"    {s['command']}" for methods in table.values() for s in methods.values()]
    return "\n".join(lines) + "\n"


MAX_JOBS = 4096
"""The most training runs ``--jobs`` keeps going at once (a SLURM array's slots or local processes)."""


def add_protocol_args(p: argparse.ArgumentParser, default_out: str) -> None:
    """The options every benchmark run shares (one protocol for every table)."""
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.02, help="the head's (and, without --prompt-lr, the prompt's)")
    p.add_argument("--prompt-lr", type=float, default=None, help="the prompt's learning rate")
    p.add_argument("--limit-train", type=int, default=1000)
    p.add_argument("--limit-test", type=int, default=1000)
    p.add_argument("--out", default=default_out)
    p.add_argument("--device", type=device_name(), default="auto",
                   help="lorsp-train's --device for every run (auto|cpu|cuda|cuda:N)")
    p.add_argument("--reuse-stale", action="store_true",
                   help="reuse a finished run of the same config whatever commit trained it (by default only "
                   "one of the running commit, neither modified, is reused; another is trained again)")
    p.add_argument("--jobs", type=count(maximum=MAX_JOBS), default=1, help="training runs at a time (each with one thread when > 1; "
                   "more than 1: submitit jobs, see --engine)")
    add_engine_args(p)


@run_cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["mnist-5k", "animal-shape"])
    p.add_argument("--methods", nargs="+", default=["none", "vp", "lorvp", "lorsp"],
                   help="prompt names, optionally with lorsp-train options: lorsp:gate=rowcol,threshold=2")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--table-name", default="results", help="writes OUT/<name>.json and OUT/<name>.md")
    add_protocol_args(p, default_out="runs/baselines")
    args = p.parse_args(argv)
    cells = [(d, spec) for d in args.datasets for spec in args.methods]
    runs = []
    for d, spec in cells:
        name, extra, tag = parse_method(spec)
        runs += [plan_run(d, name, seed, args, extra, tag) for seed in args.seeds]
    results = map_runs(lambda run: train_run(run, args.jobs), runs, args.jobs, desc=f"{args.table_name} runs",
                       engine=engine_options(args))
    done = iter(results)
    table: dict[str, dict[str, dict]] = {d: {} for d in args.datasets}
    for d, spec in cells:
        table[d][spec] = summarise([next(done) for _ in args.seeds])
    stale = stale_reuses(runs, results)
    stale_line = stale_note(stale, len(runs), running_commit()) if stale else None
    write_tables(args.out, args.table_name, run_record(args, table=table, reused_stale=stale),
                 markdown(table, args, stale_line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
