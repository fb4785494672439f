import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from lorsp.backbones import BACKBONES, create_backbone, list_backbones
from lorsp.plumbing.errors import LorspError

EGYPTIAN_CAT, TABBY, TIGER_CAT = 285, 281, 282


def chelsea(size: int) -> torch.Tensor:
    img = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1).float().div(255)
    return F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@pytest.mark.parametrize("name,size", [("efficientnet_lite0", 224), ("efficientnet_lite1", 240),
                                       ("efficientnet_lite2", 260)])
def test_packaged_weights_classify_a_real_cat(name, size):
    backbone = create_backbone(name)
    with torch.no_grad():
        top3 = backbone(chelsea(size)).topk(3).indices[0].tolist()
    assert top3[0] in (EGYPTIAN_CAT, TABBY, TIGER_CAT)
    assert set(top3) <= {EGYPTIAN_CAT, TABBY, TIGER_CAT, 287}  # 287: lynx


def test_backbone_is_frozen_and_stays_in_eval(lite0):
    assert not any(p.requires_grad for p in lite0.parameters())
    lite0.train()
    assert not lite0.training and not any(m.training for m in lite0.modules())
    x = chelsea(64).requires_grad_(True)
    lite0.features(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in lite0.parameters())


def test_registry_lists_offline_backbones():
    assert list_backbones() == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def test_unknown_backbone_names_the_valid_ones():
    with pytest.raises(LorspError, match="efficientnet_lite0"):
        create_backbone("resnet9000")


def test_timm_architecture_without_weights_is_refused():
    with pytest.raises(LorspError, match="--weights"):
        create_backbone("resnet10t")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_any_timm_architecture_loads_user_weights(tmp_path, suffix):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    ref = timm.create_model("resnet10t", pretrained=False).eval()
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    path = tmp_path / f"w{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    backbone = create_backbone("resnet10t", weights=path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = ref(backbone.normalize(x))
        assert torch.equal(backbone(x), expected)
    assert backbone.num_features == ref.num_features


def test_weights_of_wrong_shape_are_one_clear_error(tmp_path):
    import timm

    state = timm.create_model("resnet10t", pretrained=False, num_classes=7).state_dict()
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(LorspError, match="shape"):
        create_backbone("resnet10t", weights=path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-weights",))


def test_weights_file_with_pickled_code_never_runs_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": _Exploit()}, path)
    with pytest.raises(LorspError, match="(cannot read|not a readable) weights file"):
        create_backbone("resnet10t", weights=path)
    assert not (tmp_path / "pwned-by-weights").exists()


def test_truncated_weights_file(tmp_path):
    src = Path(BACKBONES.get("efficientnet_lite0").weights.path())
    bad = tmp_path / "trunc.pth"
    bad.write_bytes(src.read_bytes()[:100_000])
    with pytest.raises(LorspError):
        create_backbone("efficientnet_lite0", weights=bad)
