"""Streaming: a sequence processed in chunks, the state carried over, equals one call; a cell
stepped over the sequence equals the layer."""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_close

import fastrnn


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("cell,kwargs", [("LSTM", {"num_layers": 2, "proj_size": 3}),
                                         ("GRU", {"batch_first": True}), ("RNN", {})])
def test_chunks_with_the_state_carried_equal_one_call(backend, cell, kwargs):
    module = getattr(fastrnn, cell)(4, 5, backend=backend, **kwargs)
    batch_first = kwargs.get("batch_first", False)
    x = torch.randn((3, 10, 4) if batch_first else (10, 3, 4), requires_grad=True)
    whole, final = module(x)
    pieces, state = [], None
    for chunk in x.split([3, 1, 6], dim=1 if batch_first else 0):
        out, state = module(chunk, state)
        pieces.append(out)
    assert_close(torch.cat(pieces, dim=1 if batch_first else 0), whole, torch.float32)
    for a, e in zip(state if cell == "LSTM" else (state,), final if cell == "LSTM" else (final,)):
        assert_close(a, e, torch.float32)
    # the carried state keeps the graph: gradients through the chunks equal the whole call's
    (g_whole,) = torch.autograd.grad(whole.square().sum(), x)
    (g_chunks,) = torch.autograd.grad(torch.cat(pieces, dim=1 if batch_first else 0)
                                      .square().sum(), x)
    assert_close(g_chunks, g_whole, torch.float32)


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_a_cell_stepped_over_the_sequence_equals_the_layer(backend):
    layer = fastrnn.LSTM(4, 5, backend=backend)
    cell = fastrnn.LSTMCell(4, 5, backend=backend)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(6, 2, 4)
    out, (h_n, c_n) = layer(x)
    h = c = torch.zeros(2, 5)
    for t in range(6):
        h, c = cell(x[t], (h, c))
        assert_close(h, out[t], torch.float32)
    assert_close(c, c_n[0], torch.float32)
