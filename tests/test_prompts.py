import pytest
import torch

from lorsp.errors import LorspError
from lorsp.prompts import create_prompt, list_prompts


def test_registry():
    assert {"none", "vp", "lorvp"} <= set(list_prompts())
    with pytest.raises(LorspError, match="lorvp"):
        create_prompt("nope", image_size=32)


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
