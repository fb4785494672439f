import argparse

import pytest
import torch

from lorsp.plumbing.errors import LorspError
from lorsp.prompts import (check_options, create_prompt, list_prompts, option_flag, option_names, options_from_config,
                           prompt_options)


def test_registry():
    assert list_prompts() == ["lorsp", "lorvp", "none", "smm", "vp"]
    with pytest.raises(LorspError, match="lorvp"):
        create_prompt("nope", image_size=32)


@pytest.mark.parametrize("name", ["lorsp", "lorvp", "none", "vp"])
def test_declared_options_round_trip_to_the_argparse_group(name):
    """Every declared option is one lorsp-train argument (its type, choices and help), grouped under its method,
    typed values come back under the field's name, and untyped ones are absent (SUPPRESS)."""
    from lorsp.train import build_parser

    parser = build_parser()
    declared = prompt_options(name)
    by_dest = {a.dest: a for a in parser._actions}
    groups = {g.title: g for g in parser._action_groups}
    assert f"{name} options" in groups
    own = {a.dest for a in groups[f"{name} options"]._group_actions}
    others = {a.dest for t, g in groups.items() if t.endswith(" options") and t != f"{name} options"
              for a in g._group_actions}
    for f in declared:
        action = by_dest[f.name]
        assert action.option_strings == [option_flag(f.name)]
        assert action.default is argparse.SUPPRESS and f.metadata["help"] in action.help
        assert tuple(action.choices or ()) == tuple(f.metadata.get("choices", ()))
        assert f.name in own or f.name in others  # a shared option is listed once, under another method
    assert own <= {f.name for f in declared}
    typed = {f.name: (f.metadata["choices"][-1] if "choices" in f.metadata else f.default) for f in declared}
    argv = [x for k, v in typed.items() for x in (option_flag(k), str(v))]
    args = vars(parser.parse_args(["--prompt", name, *argv, "--out", "x"]))
    assert {k: args[k] for k in typed} == typed
    assert not set(args) & ({k for n in list_prompts() for k in option_names(n)} - set(typed))


def test_every_declared_default_is_the_train_config_default():
    from dataclasses import fields

    from lorsp.train import TrainConfig

    config = {f.name: f.default for f in fields(TrainConfig)}
    for name in list_prompts():
        for f in prompt_options(name):
            assert config[f.name] == f.default, (name, f.name)


@pytest.mark.parametrize("name,option", [("vp", {"rank": 8}), ("none", {"time_steps": 4}),
                                         ("lorvp", {"gates": 8}), ("lorsp", {"ranks": 2})])
def test_create_prompt_refuses_an_undeclared_option(name, option):
    with pytest.raises(LorspError, match=f"{option_flag(next(iter(option)))} does not apply to --prompt {name}"):
        create_prompt(name, image_size=32, **option)


def test_a_whole_config_builds_each_prompt_with_its_own_options():
    from lorsp.prompts import prompt_from_config as build_prompt
    from lorsp.train import TrainConfig

    for name in list_prompts():
        config = TrainConfig(prompt=name, image_size=32, rank=3, gates=8, hidden=16).to_dict()
        assert set(options_from_config(name, config)) == set(option_names(name))
        prompt = build_prompt(config)
        assert getattr(prompt, "rank", 3) == 3
    assert build_prompt(TrainConfig(prompt="lorsp", gate="rowcol", gates=8, image_size=32).to_dict()).gate == "rowcol"


@pytest.mark.parametrize("given,fragment", [
    (("vp", {"rank": 8}), "--rank does not apply to --prompt vp"),
    (("lorsp", {"gate": "pixel", "gates": 8}), "--gates does not apply to --gate pixel"),
    (("lorvp", {"time_steps": 3}), "--time-steps does not apply to --prompt lorvp"),
])
def test_check_options_refuses_what_the_method_or_its_mode_does_not_use(given, fragment):
    with pytest.raises(LorspError, match=fragment):
        check_options(*given)


def test_check_options_takes_what_applies():
    check_options("lorsp", {"gate": "rowcol", "gates": 8, "rank": 2})
    check_options("lorsp", {"gate": "pixel", "rank": 2, "time_steps": 4})
    check_options("lorvp", {"rank": 2})
    check_options("vp", {})


def test_metrics_keys_of_each_method_are_the_run_keys_and_its_declaration():
    from lorsp.train import RUN_KEYS, TrainConfig, metrics_config

    lorsp_keys = ["time_steps", "encoding", "pool", "hidden", "gates", "factors", "train_generator", "relay", "relay_noise",
                  "init_std", "beta",
                  "threshold", "pixel_input", "pixel_code", "pixel_kernel", "gate", "sparsity_weight", "sparsity_target", "sparsity_warmup", "gate_bias",
                  "surrogate_slope", "generator_lr_scale"]
    assert list(metrics_config(TrainConfig(prompt="lorsp"))) == [*RUN_KEYS, *lorsp_keys]  # in declaration order
    assert list(metrics_config(TrainConfig(prompt="smm"))) == [*RUN_KEYS, "mask_width", "patch", "mask_layers"]
    for name in ("lorvp", "vp", "none"):
        assert list(metrics_config(TrainConfig(prompt=name))) == list(RUN_KEYS)
    assert "rank" in RUN_KEYS


def test_heads_registry():
    from lorsp.heads import FrequencyLabelMapping, LinearHead, create_head, list_heads, register_head

    assert list_heads() == ["lp", "flm"]
    assert isinstance(create_head("lp", 8, 3), LinearHead)
    assert isinstance(create_head("flm", 8, 3), FrequencyLabelMapping)
    with pytest.raises(LorspError, match="unknown head 'mlp'; choose one of: lp, flm"):
        create_head("mlp", 8, 3)
    with pytest.raises(ValueError, match="registered twice"):
        register_head("lp")(lambda num_features, num_classes: LinearHead(num_features, num_classes))


def test_lorsp_train_help_lists_prompts_heads_backbones_and_datasets():
    from lorsp.backbones import list_backbones
    from lorsp.data import list_datasets
    from lorsp.heads import list_heads
    from lorsp.train import build_parser

    text = " ".join(build_parser().format_help().split())
    for name in [*list_prompts(), *list_heads(), *list_backbones(), *list_datasets()]:
        assert name in text, name
    for name in list_prompts():
        assert f"{name} options:" in text


def test_parameter_counts_match_the_papers():
    assert create_prompt("vp", image_size=224).num_params() == 69_840  # Bahng et al., width 30
    assert create_prompt("lorvp", image_size=224, rank=4).num_params() == 5_376  # 3*2*L*r
    assert create_prompt("none", image_size=224).num_params() == 0


def test_vp_is_a_frame_of_width_30L_over_224():
    p = create_prompt("vp", image_size=112)
    frame = p(torch.zeros(1, 3, 112, 112))[0]
    w = 15
    assert torch.count_nonzero(frame[:, w:-w, w:-w]) == 0
    assert torch.count_nonzero(frame[:, :w, :]) == 3 * w * 112


def test_lorvp_starts_at_zero_and_has_rank_at_most_r():
    p = create_prompt("lorvp", image_size=32, rank=3)
    x = torch.rand(2, 3, 32, 32)
    assert torch.count_nonzero(p(x)) == 0  # B = 0 at start
    with torch.no_grad():
        p.B.normal_()
    out = p(x)
    assert out.shape == x.shape and torch.equal(out[0], out[1])  # shared by all images
    for c in range(3):
        assert torch.linalg.matrix_rank(out[0, c].detach()) <= 3


@pytest.mark.parametrize("rank", [0, -1, 33])
def test_bad_rank(rank):
    with pytest.raises(LorspError, match="--rank"):
        create_prompt("lorvp", image_size=32, rank=rank)


def test_wrong_input_shape_is_refused():
    p = create_prompt("lorvp", image_size=32)
    with pytest.raises(LorspError, match="shape"):
        p(torch.zeros(1, 3, 64, 64))

