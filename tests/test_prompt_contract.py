"""The prompt contract: a method is one module plus one registry line, and its options are declared once.

``TINY_METHOD`` below is a whole new prompt method, written as a user would write it in a module of their own:
its options, its parameter groups and a loss term read from its declared forward outputs. Nothing else in
lorsp changes for it: the test imports it before lorsp's trainer, then trains, saves, reloads and scores it
through ``lorsp-train`` and ``lorsp.load``.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import pytest

from lorsp.prompts import create_prompt, list_prompts, options_class, prompt_options
from lorsp.prompts.base import PROMPTS

TINY_METHOD = textwrap.dedent('''
    """A per-channel colour shift, scaled per image by the image's mean: ``p(x) = s * mean(x) * c``."""
    from dataclasses import dataclass, field

    import torch
    from torch import nn

    from lorsp.plumbing.cli_options import number
    from lorsp.prompts import PromptOutput, VisualPrompt, register_prompt


    @dataclass(frozen=True)
    class ShiftOptions:
        scale: float = field(default=0.5, metadata={"help": "s: the shift's scale", "parse": number(0.0, above=True)})
        shrink: float = field(default=0.1, metadata={"help": "weight of the term that shrinks c", "parse": number(0.0)})


    @register_prompt("tiny-shift")
    class ShiftPrompt(VisualPrompt):
        Options = ShiftOptions

        def __init__(self, image_size, options=None, **overrides):
            super().__init__(image_size, options, **overrides)
            self.colour = nn.Parameter(torch.zeros(3))

        def output(self, x):
            self.check_input(x)
            level = x.mean((1, 2, 3), keepdim=True)
            return PromptOutput(self.options.scale * level * self.colour[None, :, None, None].expand_as(x))

        def forward(self, x):
            return self.output(x).prompt

        def loss_terms(self, out, epoch):
            return self.options.shrink * out.prompt.pow(2).mean()
''')


def test_a_new_method_is_one_module_that_trains_saves_and_loads_through_the_whole_toolchain(tmp_path):
    (tmp_path / "tiny_shift.py").write_text(TINY_METHOD)
    script = textwrap.dedent(f'''
        import json, sys
        import tiny_shift  # the one line a user adds: importing the module registers the method
        import lorsp
        from lorsp.train import main
        out = {str(tmp_path / "run")!r}
        assert main(["--dataset", "sklearn-digits", "--prompt", "tiny-shift", "--scale", "0.25", "--image-size", "32",
                     "--epochs", "1", "--batch-size", "32", "--limit-train", "64", "--limit-test", "32", "--quiet",
                     "--out", out]) == 0
        metrics = json.load(open(out + "/metrics.json"))
        model = lorsp.load(out + "/model.pt")
        print(json.dumps({{"scale": metrics["scale"], "shrink": metrics["shrink"], "params": metrics["params"],
                          "loaded": [model.prompt.options.scale, model.prompt.options.shrink]}}))
        try:
            main(["--prompt", "tiny-shift", "--rank", "2", "--out", out + "2"])
        except SystemExit as exc:
            print("refused", exc.code)
    ''')
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(next(line for line in lines if line.startswith("{")))
    assert result["scale"] == 0.25 and result["shrink"] == 0.1  # typed and declared default, in metrics.json
    assert result["params"]["prompt"] == 3 and result["loaded"] == [0.25, 0.1]
    assert lines[-1] == "refused 2" and "--rank does not apply to --prompt tiny-shift" in done.stderr


def test_a_method_registered_after_the_config_was_built_is_refused():
    from lorsp.config import train_config_class
    from lorsp.prompts import VisualPrompt, register_prompt

    train_config_class()  # TrainConfig made from every method registered so far

    with pytest.raises(TypeError, match="registered after lorsp.config"):
        register_prompt("too-late")(type("TooLate", (VisualPrompt,), {}))
    assert "too-late" not in PROMPTS


@pytest.mark.parametrize("name", list_prompts())
def test_every_default_is_the_same_from_the_command_line_the_config_and_a_direct_build(name):
    """For every option of every method: what ``lorsp-train --prompt NAME`` gives, what ``create_prompt`` and the
    method's own class build with, and the declaration's default are one value."""
    from lorsp.train import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["--prompt", name, "--out", "x", "--image-size", "128"]))
    built = create_prompt(name, image_size=128)
    direct = PROMPTS.get(name)(128)
    declared = options_class(name)()
    for f in prompt_options(name):
        values = {getattr(cfg, f.name), getattr(built.options, f.name), getattr(direct.options, f.name),
                  getattr(declared, f.name), f.default}
        assert len(values) == 1, (name, f.name, values)
    assert dataclasses.asdict(built.options) == dataclasses.asdict(direct.options)


def test_a_value_outside_its_declaration_is_refused_the_same_way_everywhere():
    from lorsp.plumbing.errors import LorspError
    from lorsp.stored_config import check_stored_config
    from lorsp.train import TrainConfig

    for build in (lambda: create_prompt("lorsp", 64, beta=1.5),
                  lambda: PROMPTS.get("lorsp")(64, beta=1.5),
                  lambda: TrainConfig(prompt="lorsp", image_size=64, beta=1.5).validate()):
        with pytest.raises(LorspError, match="--beta must be"):
            build()
    with pytest.raises(LorspError, match="config 'beta' must be"):
        check_stored_config(TrainConfig(prompt="lorsp", beta=1.5).to_dict(), "model.pt")
