"""``lengths=`` in the modules' forward: the PackedSequence of those lengths, padded back."""

from __future__ import annotations

import pytest
import torch
from helpers import run_and_grads, twins
from tolerances import assert_close
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def _torch_packed(module, x, hx, lengths, batch_first):
    T = x.size(1 if batch_first else 0)
    packed = pack_padded_sequence(x, lengths, batch_first, enforce_sorted=False)
    out, state = module(packed, hx)
    return pad_packed_sequence(out, batch_first, total_length=T)[0], state


class _Lengths(torch.nn.Module):
    """Calls ``module(x, hx, lengths=...)`` so that run_and_grads sees a plain module."""

    def __init__(self, module, lengths):
        super().__init__()
        self.module, self.lengths = module, lengths

    def forward(self, x, hx):
        return self.module(x, hx, lengths=self.lengths)


class _Packed(_Lengths):
    def forward(self, x, hx):
        return _torch_packed(self.module, x, hx, self.lengths, self.module.batch_first)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("cell,kwargs", [("LSTM", {"bidirectional": True, "proj_size": 2}),
                                         ("GRU", {"batch_first": True, "num_layers": 2}),
                                         ("RNN", {})])
def test_lengths_as_torch_packed(backend, cell, kwargs):
    ref, ours = twins(cell, 3, 5, backend=backend, dtype=torch.float32, **kwargs)
    lengths = torch.tensor([2, 6, 1, 4])
    B, T = 4, 6
    x = torch.randn((B, T, 3) if ours.batch_first else (T, B, 3), requires_grad=True)
    rows = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    h0 = torch.randn(rows, B, kwargs.get("proj_size") or 5, requires_grad=True)
    hx = (h0, torch.randn(rows, B, 5, requires_grad=True)) if cell == "LSTM" else h0
    expected = run_and_grads(_Packed(ref, lengths), x, hx)
    actual = run_and_grads(_Lengths(ours, lengths), x, hx)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert_close(actual[key], value, torch.float32, msg=key)
    out = actual["output"]
    past = out[2, 2:] if ours.batch_first else out[2:, 2]  # sequence 2 (length 1) past step 2
    assert past.numel() and (past == 0).all()


def test_lengths_errors():
    _, lstm = twins("LSTM", 3, 5, backend="reference", dtype=torch.float32)
    x = torch.randn(4, 2, 3)
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        lstm(x, lengths=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="PackedSequence has its lengths"):
        lstm(pack_padded_sequence(x, torch.tensor([4, 2])), lengths=torch.tensor([4, 2]))
    with pytest.raises(ValueError, match="3-D input"):
        lstm(x[:, 0], lengths=torch.tensor([4]))
    with pytest.raises(RuntimeError):
        lstm(x, lengths=torch.tensor([5, 2]))  # longer than T
