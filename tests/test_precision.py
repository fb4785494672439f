"""``--precision``: autocast types, the fp16 gradient scaler and its resume state, refusals."""
from __future__ import annotations

import pytest
import torch

from lorsp.plumbing.errors import LorspError
from lorsp.plumbing.precision import Precision, precision_for
from lorsp.train import TrainConfig, train


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_each_precision_computes_in_its_type_on_the_cpu(name, dtype):
    precision = precision_for(name, torch.device("cpu"))
    layer = torch.nn.Linear(4, 2)
    with precision.autocast():
        out = layer(torch.ones(3, 4))
    assert out.dtype == dtype and layer.weight.dtype == torch.float32  # parameters stay fp32
    assert precision.scaler().is_enabled() == (name == "fp16")


def test_an_unknown_precision_is_refused_in_one_line():
    with pytest.raises(LorspError, match="--precision must be one of fp32, bf16, fp16, got 'int8'"):
        precision_for("int8", torch.device("cpu"))
    with pytest.raises(LorspError, match="--precision must be one of"):
        TrainConfig(precision="fp64").validate()


def test_the_fp16_scaler_skips_a_step_whose_gradients_overflow():
    weight = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([weight], lr=1.0)
    scaler = Precision("fp16", "cpu").scaler()
    scaler.scale((weight * float("inf")).sum()).backward()
    scaler.step(opt)
    scaler.update()
    assert torch.equal(weight.detach(), torch.ones(2))  # the overflowed step was not taken
    assert scaler.get_scale() < 65536.0  # and the scale came down


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(dataset="sklearn-digits", image_size=32, limit_train=32, limit_test=16,
                                 batch_size=16, epochs=2, prompt="lorvp"), **kw})


@pytest.mark.slow
def test_an_fp16_run_keeps_its_scaler_across_a_resume(tmp_path):
    full = train(tiny(precision="fp16"), tmp_path / "full", progress=False)
    assert full["precision"] == "fp16"
    train(tiny(precision="fp16"), tmp_path / "cut", stop_after_epoch=1, progress=False)
    state = torch.load(tmp_path / "cut.partial" / "last.pt", weights_only=True)
    assert state["config"]["precision"] == "fp16" and state["scaler"]["scale"] > 0
    resumed = train(TrainConfig(), tmp_path / "cut", resume=tmp_path / "cut.partial" / "last.pt", progress=False)
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    assert resumed["test_accuracy"] == full["test_accuracy"]


@pytest.mark.slow
def test_bf16_moves_the_training_loss_and_fp32_is_the_default(tmp_path):
    fp32 = train(tiny(epochs=1), tmp_path / "fp32", progress=False)
    bf16 = train(tiny(epochs=1, precision="bf16"), tmp_path / "bf16", progress=False)
    assert fp32["precision"] == "fp32" and bf16["precision"] == "bf16"
    a, b = fp32["history"][0]["train_loss"], bf16["history"][0]["train_loss"]
    assert a != b and abs(a - b) < 0.05 * a  # computed in another type, close to it
    state = torch.load(tmp_path / "bf16" / "last.pt", weights_only=True)
    assert state["scaler"] == {}  # no scaler without fp16


@pytest.mark.parametrize("edit,fragment", [
    (lambda s: s.pop("scale"), "scaler must hold"),
    (lambda s: s.update(scale=float("nan")), "scaler scale"),
    (lambda s: s.update(scale=-1.0), "scaler scale"),
    (lambda s: s.update(growth_interval="2000"), "scaler growth_interval"),
    (lambda s: s.update(backoff_factor=2.0), "scaler backoff_factor"),
    (lambda s: s.update(run="os.system"), "scaler must hold"),
])
def test_a_resume_scaler_state_out_of_range_is_one_line(edit, fragment):
    from lorsp.train import restore_scaler
    good = Precision("fp16", "cpu").scaler().state_dict()
    restore_scaler(Precision("fp16", "cpu").scaler(), dict(good), "r.pt")
    restore_scaler(Precision("fp32", "cpu").scaler(), {}, "r.pt")  # no fp16: nothing to restore
    bad = dict(good)
    edit(bad)
    with pytest.raises(LorspError, match=fragment) as info:
        restore_scaler(Precision("fp16", "cpu").scaler(), bad, "r.pt")
    assert "\n" not in str(info.value)
