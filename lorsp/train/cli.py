"""``lorsp-train``: the parser (the run's options and one group per prompt method, all from their declarations),
the config it gives, and ``main``."""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from lorsp.backbones import list_backbones
from lorsp.config import RunOptions, TrainConfig, prompt_fields
from lorsp.data import list_datasets
from lorsp.plumbing.cli import run_cli
from lorsp.plumbing.cli_options import OptionParser, device_name, worker_count
from lorsp.plumbing.device import DEVICE_CHOICES
from lorsp.prompts import check_options, list_prompts, option_flag, option_names, option_type, options_class, \
    prompt_options
from lorsp.prompts.base import Retired, retired_options
from lorsp.train.run import train
from lorsp.stored_paths import name_paths_of


def declared_argument(p: argparse._ActionsContainer, options: type, f: dataclasses.Field, help_text: str,
                      default: object = argparse.SUPPRESS) -> None:
    """Add the command-line argument of declared option ``f`` (of dataclass ``options``) to ``p``."""
    help_text = help_text.replace("%", "%%")
    if f.type in (bool, "bool"):
        p.add_argument(option_flag(f.name), action="store_true", default=default, help=help_text)
        return
    choices = f.metadata.get("choices")
    parse = option_type(options, f)
    if f.metadata.get("retired"):
        parse = refusing_retired(parse, f.metadata["retired"])
    p.add_argument(option_flag(f.name), type=parse, choices=choices() if callable(choices) else choices,
                   default=default, help=help_text)


def refusing_retired(parse: Callable[[str], Any], retired: Mapping[str, Retired]) -> Callable[[str], Any]:
    """``parse``, except that a removed choice (``--relay learned``) is refused naming the commit that last ran it."""
    def parse_value(text: str) -> Any:
        if text in retired:
            raise argparse.ArgumentTypeError(retired[text].refusal(f"{text!r} was"))
        return parse(text)

    parse_value.__name__ = getattr(parse, "__name__", "value")  # what argparse names in its own messages
    return parse_value


def add_retired_arguments(p: argparse.ArgumentParser, declared: set[str]) -> None:
    """A hidden argument for each option removed from a method (``--sparsity-feedback``): typed, it is refused in
    one line naming the commit that last ran it, instead of argparse's "unrecognized arguments"."""
    for name, retired in sorted(retired_options().items()):
        if name in declared:
            continue

        def refuse(text: str, retired: Retired = retired) -> Any:
            raise argparse.ArgumentTypeError(retired.refusal("it was"))

        p.add_argument(option_flag(name), type=refuse, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The run's own options (:class:`lorsp.config.RunOptions`). As for the prompt options, only what the user
    typed reaches the namespace (``--resume`` refuses a typed option its run was not trained with)."""
    extra = {"dataset": f" ({', '.join(list_datasets())})",
             "backbone": f" (offline: {', '.join(list_backbones())}; any timm name with --weights)"}
    for f in dataclasses.fields(RunOptions):
        declared_argument(p, RunOptions, f, f"{f.metadata['help']}{extra.get(f.name, '')} (default: {f.default})")


def add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    """One argument group per prompt method (``lorsp options``), derived from its declared options.

    An option two methods share (``--rank``) is listed once, with the first method that declares
    it (methods with fewer options first; :func:`lorsp.config.prompt_fields`). Every default is
    ``argparse.SUPPRESS``: only what the user typed reaches the namespace (:func:`config_from_args`
    checks it; TrainConfig fills the rest).
    """
    owner = {}
    methods = sorted(list_prompts(), key=lambda name: len(prompt_options(name)))
    for name in methods:
        for f in prompt_options(name):
            owner.setdefault(f.name, name)
    prompt_fields()  # refuses two defaults for one shared option
    for name in methods:
        declared = prompt_options(name)
        shared = [f for f in declared if owner[f.name] != name]
        description = ("takes no options" if not declared else
                       "; ".join(f"also takes {option_flag(f.name)} (under {owner[f.name]} options)"
                                 for f in shared) or None)
        group = p.add_argument_group(f"{name} options", description)
        for f in declared:
            if owner[f.name] != name:
                continue
            takers = [m for m in methods if f.name in option_names(m)]
            notes = [f"default: {f.default}"]
            if len(takers) > 1:
                notes.append(f"--prompt {', '.join(takers)}")
            notes += [f"only with {option_flag(other)} {'|'.join(allowed)}"
                      for other, allowed in f.metadata.get("applies_when", {}).items()]
            declared_argument(group, options_class(name), f, f"{f.metadata['help']} ({'; '.join(notes)})")
    add_retired_arguments(p, set(owner))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config from parsed ``lorsp-train`` arguments, before anything is loaded.

    A prompt option the user typed that ``--prompt`` does not take, or that its chosen mode does
    not use (``--gates`` under ``--gate rank``), is a :class:`LorspError`; options not typed take
    their declared defaults.
    """
    values = vars(args)
    every_option = {k for name in list_prompts() for k in option_names(name)}
    check_options(values.get("prompt", RunOptions.prompt), {k: v for k, v in values.items() if k in every_option})
    return TrainConfig.from_dict(values)


def given_options(args: argparse.Namespace) -> dict[str, object]:
    """The config options the user typed (every other one is absent from the namespace)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in known}


def build_parser() -> argparse.ArgumentParser:
    """The ``lorsp-train`` parser: the run's options, where it runs and writes, then one group per prompt method."""
    p = OptionParser(
        prog="lorsp-train",
        description="Train a visual prompt (and head) on a frozen backbone under one protocol: "
                    "SGD + cosine, best-on-val selection, test scored once. A prompt option that "
                    "--prompt does not take is refused.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--device", type=device_name(), default="auto", metavar=DEVICE_CHOICES,
                   help="auto: the first GPU when torch sees CUDA, else the CPU; under torchrun each rank "
                        "takes cuda:LOCAL_RANK")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--resume", default=None, help="continue from a run's last.pt (its config is used)")
    p.add_argument("--workers", type=worker_count(), default=0,
                   help="data-loading processes (persistent; pinned memory on CUDA); results do not depend on it")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_prompt_arguments(p)
    return p


@run_cli
def main(argv: list[str] | None = None) -> int:
    """``lorsp-train``: parse, check the options against the prompt, train, print one summary line."""
    args = build_parser().parse_args(argv)
    name_paths_of(args)  # a resume file's stored paths are read only when typed (lorsp.stored_paths)
    cfg = config_from_args(args)
    metrics = train(cfg, args.out, force=args.force, resume=args.resume, progress=not args.quiet,
                    device=args.device, workers=args.workers, given=given_options(args))
    if metrics:
        p = metrics["params"]
        print(f"{cfg.prompt}/{cfg.head} on {cfg.dataset}: val {metrics['val_accuracy']:.4f} "
              f"(epoch {metrics['best_epoch']})  test {metrics['test_accuracy']:.4f}  "
              f"params prompt {p['prompt']} head {p['head']}  -> {args.out}")
    return 0
