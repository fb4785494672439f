"""Every numeric option of the four console scripts is range-checked while the arguments are parsed."""
from __future__ import annotations

import argparse

import pytest

from hw_sim.cli import main as hwsim_main
from hw_sim.cosim_cli import main as cosim_main
from lorsp.plumbing.cli_options import count, device_name, integer, number, seconds, seed, worker_count
from lorsp.train import main as train_main
from pipeline.export_cli import main as export_main
from tests.conftest import assert_one_line_error
from tests.deploy_helpers import call_cli

TRAIN = ["--prompt", "lorsp", "--dataset", "sklearn-digits", "--image-size", "32", "--quiet"]
BAD_TRAIN = [
    ("--limit-train", "0"), ("--limit-train", "-1"), ("--limit-val", "0"), ("--limit-test", "-5"),
    ("--hidden", "0"), ("--hidden", "-1"), ("--momentum", "nan"), ("--momentum", "-1"), ("--momentum", "1"),
    ("--weight-decay", "nan"), ("--weight-decay", "-0.1"), ("--sparsity-weight", "-1"), ("--epochs", "1e23"),
    ("--epochs", "0"), ("--seed", str(2 ** 70)), ("--seed", "-1"), ("--image-size", "100000"),
    ("--image-size", "8"), ("--lr", "inf"), ("--lr", "0"), ("--prompt-lr", "-1"), ("--batch-size", "0"),
    ("--shots", "0"), ("--time-steps", "0"), ("--beta", "1"), ("--threshold", "0"), ("--rank", "0"),
    ("--sparsity-target", "1.5"), ("--surrogate-slope", "nan"), ("--generator-lr-scale", "-inf"),
    ("--gate-bias", "nan"), ("--relay-noise", "-0.1"), ("--sparsity-warmup", "-1"), ("--gates", "0"),
    ("--workers", "-2"), ("--workers", "1e9"), ("--workers", "two"), ("--device", "gpu"), ("--device", "cpu:0"),
    ("--precision", "fp8"),
]


@pytest.mark.parametrize("flag,value", BAD_TRAIN)
def test_train_refuses_a_number_out_of_range_in_one_line(capsys, tmp_path, flag, value):
    proc = call_cli(train_main, capsys, *TRAIN, f"{flag}={value}", "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, f"argument {flag}", repr(value))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("main,args", [
    (export_main, ["m.pt", "--target", "loihi", "-o", "OUT", "--samples", "0"]),
    (export_main, ["m.pt", "--target", "loihi", "-o", "OUT", "--samples", "-3"]),
    (export_main, ["m.pt", "--target", "loihi", "-o", "OUT", "--timeout", "nan"]),
    (export_main, ["m.pt", "--target", "loihi", "-o", "OUT", "--timeout", "0"]),
    (export_main, ["m.pt", "--target", "loihi", "-o", "OUT", "--timeout", "1e300"]),
    (hwsim_main, ["DIR", "-o", "OUT", "--samples", "0"]),
    (hwsim_main, ["DIR", "-o", "OUT", "--timeout", "-4"]),
    (hwsim_main, ["DIR", "-o", "OUT", "--timeout", "inf"]),
    (cosim_main, ["DIR", "--limit", "0"]),
    (cosim_main, ["DIR", "--limit", "ten"]),
    (cosim_main, ["DIR", "--batch-size", "0"]),
    (cosim_main, ["DIR", "--timeout", "nan"]),
])
def test_export_hwsim_cosim_refuse_a_number_out_of_range_in_one_line(capsys, main, args):
    proc = call_cli(main, capsys, *args)
    assert_one_line_error(proc, "argument --", repr(args[-1]))


def test_argparse_errors_of_every_script_are_one_line(capsys):
    for main, args in ((train_main, ["--no-such-flag"]), (export_main, ["m.pt"]), (hwsim_main, []),
                       (cosim_main, ["a", "b"])):
        assert_one_line_error(call_cli(main, capsys, *args))


def test_the_types_accept_their_range_and_nothing_else():
    assert integer(0, 3)("3") == 3 and count()(" 7 ") == 7 and seed()(str(2 ** 32 - 1)) == 2 ** 32 - 1
    assert number(0.0, 1.0, below=True)("0") == 0.0 and seconds()("0.5") == 0.5
    assert worker_count()("0") == 0 and device_name()("cuda:1") == "cuda:1" and device_name()("auto") == "auto"
    for parse, text in ((integer(0, 3), "4"), (integer(0, 3), "2.0"), (count(), "0"), (seed(), str(2 ** 32)),
                        (number(0.0, 1.0, below=True), "1"), (number(0.0, above=True), "0"), (number(), "nan"),
                        (number(), "-inf"), (seconds(), "0"), (seconds(), "1e9"),
                       (worker_count(), "-1"), (worker_count(), "1025"), (device_name(), "cuda:x"),
                       (device_name(), "auto:0")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_open_bounds_stop_at_a_magnitude_float32_can_hold():
    """Found by benchmarks/fuzz.py (seed 1, checkpoint 800): a stored --threshold 1e308 overflowed a float32 tensor."""
    assert number(0.0, above=True)("1e30") == 1e30
    for text in ("1e31", "1e308", "-1e31"):
        with pytest.raises(argparse.ArgumentTypeError, match="<= 1e\\+30|>= -1e\\+30"):
            number()(text)
