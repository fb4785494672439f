import os

import pytest
import torch

import lorsp
from lorsp.plumbing.errors import LorspError
from lorsp.model import build_model, read_checkpoint

CLASSES = [str(i) for i in range(4)]


def make(prompt="lorvp", head="lp", size=32, backbone=None):
    cfg = {"backbone": "efficientnet_lite0", "prompt": prompt, "head": head, "rank": 2, "image_size": size}
    torch.manual_seed(0)
    return build_model(cfg, CLASSES, backbone=backbone)


def test_forward_prompt_and_counts(lite0):
    model = make(backbone=lite0).eval()
    with torch.no_grad():
        model.prompt.B.normal_()
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 4)
    assert model.prompt(x).shape == x.shape
    assert model.num_trainable_params() == {"prompt": 3 * 2 * 32 * 2, "head": 1280 * 4 + 4,
                                            "total": 384 + 5124}


def test_flm_head_trains_only_the_prompt(lite0):
    model = make(prompt="vp", head="flm", backbone=lite0)
    counts = model.num_trainable_params()
    assert counts["head"] == 0 and counts["prompt"] > 0


def test_save_and_load_give_identical_outputs(lite0, tmp_path):
    model = make(backbone=lite0).eval()
    with torch.no_grad():
        model.prompt.B.normal_()
        model.head.weight.normal_()
    path = tmp_path / "model.pt"
    torch.save(model.checkpoint_state(), path)
    torch.load(path, weights_only=True)  # plain types and tensors only
    loaded = lorsp.load(path)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(loaded.prompt(x), model.prompt(x))


def test_missing_truncated_foreign_and_malicious_checkpoints(lite0, tmp_path, monkeypatch):
    with pytest.raises(LorspError, match="not found"):
        lorsp.load(tmp_path / "nope.pt")
    good = tmp_path / "good.pt"
    torch.save(make(backbone=lite0).checkpoint_state(), good)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(LorspError, match="not a readable lorsp checkpoint"):
        lorsp.load(trunc)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(LorspError, match="not a lorsp checkpoint"):
        lorsp.load(foreign)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch pwned-by-checkpoint",))

    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "lorsp-checkpoint", "payload": Exploit()}, evil)
    with pytest.raises(LorspError, match="never run"):
        read_checkpoint(evil)
    assert not (tmp_path / "pwned-by-checkpoint").exists()
