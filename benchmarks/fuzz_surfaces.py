"""Fuzzing the surfaces beyond the bundle files (issue 28): resume files, users' image folders, command lines.

Each surface is a pair of functions in the shape of :mod:`benchmarks.fuzz`'s formats: ``mutate_X`` writes a
hostile variant of a valid input (seeded, returning what it did), ``read_X_case`` gives it to the code the
console scripts run and returns a broken promise, or None; a :class:`~lorsp.plumbing.errors.LorspError` is a
clean refusal.

* **resume**: ``lorsp-train --resume``'s reader and the restore into a real model, optimizer and schedule;
  mutated tensors, configs, history, optimizer and scheduler state, plus issue 28's torch files. Promise: every
  rate finite and >= 0, every tensor finite, no stored path kept;
* **folder**: ``imagefolder:PATH`` read image by image; corrupt images, FIFOs, links, clipping pixel modes,
  images declaring 10^10 pixels, text files named ``.png``, deep folders, uneven classes. Promise: every item an
  RGB image with a label of the listed classes;
* **argv**: the four console scripts' command lines parsed and checked as before any work (``lorsp-train``:
  its config validated); hostile values, unknown and repeated flags. Promise: every number accepted is finite.
"""
from __future__ import annotations

import contextvars
import copy
import math
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
from PIL import Image

from benchmarks.fuzz_hostile import hostile_torch_file
from benchmarks.fuzz_mutations import edit_json, hostile_array, mutate_bytes
from lorsp.config import TrainConfig
from lorsp.data import dataset_paths, load_source
from lorsp.model import build_model
from lorsp.prompts.lorsp import band_flags
from lorsp.stored_paths import name_paths

FOLDER_CLASSES = ("a", "b")
SCRIPTS = ("lorsp-train", "lorsp-export", "lorsp-hwsim", "lorsp-cosim")
TINY_TRAIN = ["--prompt", "lorsp", *band_flags(), "--dataset", "sklearn-digits", "--image-size", "32", "--epochs", "1",
              "--limit-train", "32", "--limit-test", "16", "--batch-size", "16", "--quiet"]
"""A valid ``lorsp-train`` command line (the fuzzers' base run is trained with it: band gating, whose bundle is
the chain the fuzzers edit)."""
T = TypeVar("T")


# --------------------------------------------------------------------------- promises shared by the surfaces
def as_console_script(read: Callable[[], T]) -> T:
    """``read()`` as a console script runs it: with nothing named on its command line (:mod:`lorsp.stored_paths`),
    in a context of its own."""
    def run() -> T:
        name_paths()
        return read()

    return contextvars.copy_context().run(run)


def unnamed_paths(config: dict[str, Any]) -> str | None:
    """A broken promise when an accepted config still holds a path no command line named."""
    if config.get("weights") is not None or dataset_paths(config.get("dataset") or "", config.get("data_root")):
        return (f"accepted a config storing paths no command named: {str(config.get('weights'))[:40]}, "
                f"{str(config.get('dataset'))[:40]}, {str(config.get('data_root'))[:40]}")
    return None


# --------------------------------------------------------------------------- resume files
def mutate_resume(src: Path, dst: Path, base_state: dict, rng: np.random.Generator) -> str:
    """A hostile variant of resume file ``src`` (loaded: ``base_state``) written to ``dst``."""
    kind = int(rng.random() * 10)
    if kind <= 1:
        data, what = mutate_bytes(src.read_bytes(), rng)
        dst.write_bytes(data)
        return what
    if kind <= 3:
        return hostile_torch_file(src, dst, base_state, rng, int(rng.integers(3)))
    state = copy.deepcopy(base_state)
    if kind <= 5:
        tensors = [(p, k) for p in ("model", "best_state") for part in ("prompt", "head")
                   for k in [(part, n) for n in state[p][part]]]
        tensors += [("optimizer", (i, n)) for i, s in state["optimizer"]["state"].items() for n in s
                    if isinstance(s[n], torch.Tensor)]
        holder, (outer, name) = tensors[int(rng.integers(len(tensors)))]
        where = state[holder][outer] if holder != "optimizer" else state["optimizer"]["state"][outer]
        new, what = hostile_array(where[name].numpy(), rng)
        if new.dtype.kind not in "biuf":
            new, what = np.zeros(1, np.uint8), what + " (as uint8)"
        where[name] = torch.from_numpy(np.ascontiguousarray(new))
        return f"{what} at {holder}/{outer}/{name}"
    part = ["config", "history", "scheduler", "optimizer"][int(rng.integers(4))]
    target = state[part] if part != "optimizer" else state["optimizer"]["param_groups"]
    what = edit_json(target, rng)
    torch.save(state, dst)
    return f"{part}: {what}"


def read_resume_case(base: Any, path: Path) -> str | None:
    """Read ``path`` as ``lorsp-train --resume`` does and restore it into a model, optimizer and schedule built
    as the trainer builds them (:func:`lorsp.train.stages.make_optimizer`)."""
    from lorsp.train import read_resume
    from lorsp.train.resume import restore_resume
    from lorsp.train.stages import make_optimizer

    state = as_console_script(lambda: read_resume(path))
    broken = unnamed_paths(state["config"])
    if broken:
        return broken
    cfg = TrainConfig.from_dict(state["config"])
    cfg.validate()
    model = build_model(cfg.to_dict(), base.state["classes"], backbone=base.backbone)
    steps = max(1, base.resume["scheduler"]["T_max"] // base.resume["config"]["epochs"]) * cfg.epochs
    opt, sched = make_optimizer(model, cfg, steps)
    restore_resume(model, opt, sched, state, str(path))
    for param in model.parameters():  # what training does next: a step of the optimizer and of the schedule
        param.grad = torch.zeros_like(param) if param.requires_grad else None
    opt.step()
    sched.step()
    for group in opt.param_groups:
        for key in ("lr", "initial_lr", "momentum", "weight_decay"):
            value = group.get(key, 0.0)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                return f"optimizer {key} {value!r} accepted"
    for name, value in [*model.prompt.state_dict().items(), *model.head.state_dict().items()]:
        if value.dtype.is_floating_point and not torch.isfinite(value).all():
            return f"{name} not finite"
    for param in opt.state.values():
        for name, value in param.items():
            if isinstance(value, torch.Tensor) and value.dtype.is_floating_point and not torch.isfinite(value).all():
                return f"optimizer state {name} not finite"
    return None


# --------------------------------------------------------------------------- image folders
def make_folder(root: Path) -> Path:
    """The valid image folder: ``train`` and ``test``, two classes, two 8x8 RGB PNGs each."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in FOLDER_CLASSES:
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for k in range(2):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / split / label / f"{k}.png")
    return root


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with one row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * 8)))
            + chunk(b"IEND", b""))


def mutate_folder(src: Path, dst: Path, rng: np.random.Generator) -> str:
    """A hostile variant of image folder ``src`` at ``dst`` (a hard-linked copy; a changed file is replaced)."""
    shutil.copytree(src, dst, copy_function=os.link)
    images = sorted(dst.rglob("*.png"))
    image = images[int(rng.integers(len(images)))]
    rel = image.relative_to(dst)
    kind = int(rng.integers(10))
    data = image.read_bytes()
    image.unlink()
    if kind <= 1:
        data, what = mutate_bytes(data, rng)
        image.write_bytes(data)
        return f"{what} in {rel}"
    if kind == 2:
        os.mkfifo(image)
        return f"{rel} is a FIFO"
    if kind == 3:
        target = ["/etc/passwd", "..", str(dst), "/proc/self/mem"][int(rng.integers(4))]
        image.symlink_to(target)
        return f"{rel} links to {target}"
    if kind == 4:
        mode, array = [("I;16", np.full((8, 8), 40000, np.uint16)), ("F", np.full((8, 8), 3.5, np.float32)),
                       ("I", np.full((8, 8), 70000, np.int32))][int(rng.integers(3))]
        Image.fromarray(array).save(image.with_suffix(".tif"))
        return f"{rel} as a {mode} TIFF"
    if kind == 5:
        side = int(rng.choice([10 ** 5, 1 << 16, 13_000, 1 << 31]))
        image.write_bytes(_png_declaring(side, side))
        return f"{rel} declares {side} x {side} pixels"
    if kind == 6:
        image.write_text("not an image")
        return f"{rel} is text"
    if kind == 7:
        deep = image.parent.joinpath(*["d"] * int(rng.integers(10, 24)))
        deep.mkdir(parents=True)
        (deep / image.name).write_bytes(data)
        return f"{rel} moved {len(deep.relative_to(image.parent).parts)} folders down"
    if kind == 8:
        shutil.rmtree(dst / rel.parts[0] / rel.parts[1])
        return f"class folder {rel.parts[0]}/{rel.parts[1]} removed"
    (dst / rel.parts[0] / "c").mkdir()
    image.write_bytes(data)
    return f"an empty class c in {rel.parts[0]}"


def read_folder_case(base: Any, path: Path) -> str | None:
    """``imagefolder:PATH`` loaded and every image of every split read, as training and evaluation read them."""
    source = load_source(f"imagefolder:{path}")
    for split in (source.train, source.val, source.test):
        if split is None:
            continue
        for index in range(len(split)):
            image, label = split[index]
            if not isinstance(image, Image.Image) or image.mode != "RGB":
                return f"item {index} is {type(image).__name__} {getattr(image, 'mode', '')}"
            if not 0 <= int(label) < len(source.classes):
                return f"label {label} outside the {len(source.classes)} classes"
    return None


# --------------------------------------------------------------------------- command lines
HOSTILE_ARGS = ("nan", "inf", "-inf", "-1", "0", "1e400", "99999999999999999999", "", " ", "x", "3.5", "1e-400",
                "imagefolder:/proc/self", "/etc/shadow", "n" * 300, "--force", "-o", "0x10", "٣", "1_000")


def base_argv(base: Any, script: str, out: Path) -> list[str]:
    """A valid command line of ``script`` on the base files, writing ``out``."""
    if script == "lorsp-train":
        return [*TINY_TRAIN, "--out", str(out)]
    if script == "lorsp-export":
        return ["--target", "loihi", str(base.checkpoint), "-o", str(out)]
    return [str(base.bundle), "-o", str(out)]


def _parser(script: str):
    from hw_sim import cli as hwsim_cli
    from hw_sim import cosim_cli
    from lorsp.train import cli as train_cli
    from pipeline import export_cli

    return {"lorsp-train": train_cli, "lorsp-export": export_cli, "lorsp-hwsim": hwsim_cli,
            "lorsp-cosim": cosim_cli}[script]


def mutate_argv(base: Any, out: Path, rng: np.random.Generator) -> tuple[str, list[str], str]:
    """``(script, argv, what)``: a command line of a random console script with one hostile edit."""
    script = SCRIPTS[int(rng.integers(len(SCRIPTS)))]
    argv = base_argv(base, script, out)
    flags = [o for a in _parser(script).build_parser()._actions for o in a.option_strings
             if o.startswith("--") and o != "--help"]  # --help prints and exits 0: no case
    kind = int(rng.integers(5))
    value = HOSTILE_ARGS[int(rng.integers(len(HOSTILE_ARGS)))]
    if kind <= 1:
        flag = flags[int(rng.integers(len(flags)))]
        argv += [flag, value]
        what = f"{flag} {value[:20]!r}"
    elif kind == 2:
        at = int(rng.integers(len(argv)))
        what = f"token {argv[at][:20]!r} -> {value[:20]!r}"
        argv[at] = value
    elif kind == 3:
        at = int(rng.integers(len(argv)))
        what = f"token {argv[at][:20]!r} removed"
        del argv[at]
    else:
        flag = ["--no-such-flag", "--samples", "--epochs", "--prompt", "--dataset", "--out"][int(rng.integers(6))]
        argv += [flag, value, flag, value]
        what = f"{flag} twice"
    return script, argv, f"{script}: {what}"


def read_argv_case(base: Any, script: str, argv: list[str]) -> str | None:
    """``argv`` parsed and checked as the console script does before any work (for ``lorsp-train`` the config
    built and validated; for ``lorsp-export`` the target's options)."""
    module = _parser(script)
    args = module.build_parser().parse_args(argv)
    if script == "lorsp-train":
        cfg = module.config_from_args(args)
        cfg.validate()
        values = cfg.to_dict()
    elif script == "lorsp-export":
        values = {**vars(args), **module.target_options(args)}
    else:
        values = vars(args)
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            return f"{key} = {value} accepted"
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1 << 62:
            return f"{key} = {value} accepted"
    return None
