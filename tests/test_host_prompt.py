"""The host's prompt addition: only the open block is touched, and it equals the dense prompt bit for bit."""
from __future__ import annotations

import pytest
import torch

from lorsp.prompts import create_prompt


def gated_prompt(gate: str):
    torch.manual_seed(0)
    prompt = create_prompt("lorsp", 32, gates=8, gate=gate, gate_bias=0.2).eval()  # some gates stay silent
    with torch.no_grad():
        prompt.B.normal_()  # a trained-looking, nonzero B A
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        dense, trace = prompt.trace(x)
    return prompt, x, dense, trace.gate_spikes


def test_rowcol_gating_adds_only_the_open_block():
    prompt, x, dense, gate_spikes = gated_prompt("rowcol")
    out, entries = prompt.add_from_spikes(x, gate_spikes)
    assert torch.equal(out, x + dense)
    fired = gate_spikes.bool().any(0)
    rows = fired[:, :8][:, prompt.group_of_line].sum(1)
    cols = fired[:, 8:][:, prompt.group_of_line].sum(1)
    assert entries == int((3 * rows * cols).sum())
    assert 0 < entries < 3 * 32 * 32 * len(x)  # some gates open, some closed: the test means something
    closed = dense == 0
    assert torch.equal(out[closed], x[closed])


@pytest.mark.parametrize("fired", [False, True])
def test_all_closed_or_all_open(fired):
    prompt, x, dense, gate_spikes = gated_prompt("rowcol")
    spikes = torch.full_like(gate_spikes, float(fired))
    out, entries = prompt.add_from_spikes(x, spikes)
    assert entries == (3 * 32 * 32 * len(x) if fired else 0)
    assert torch.equal(out, x + prompt.prompt_from_rates(spikes.mean(0)))


@pytest.mark.parametrize("size", [torch.tensor([], dtype=torch.int64), torch.tensor([16, 16])])
def test_a_host_file_with_a_malformed_encoding_size_is_one_error(tmp_path, size):
    from safetensors.torch import save_file

    from deploy.host import host_tensors, read_host
    from lorsp.plumbing.errors import LorspError

    prompt = create_prompt("lorsp", 32)
    tensors, metadata = host_tensors(prompt, {"weight": torch.zeros(2, 4)}, [1.0, 1.0])
    tensors["encoding.size"] = size
    save_file(tensors, str(tmp_path / "host.safetensors"), metadata=metadata)
    with pytest.raises(LorspError, match="malformed"):
        read_host(tmp_path / "host.safetensors")
