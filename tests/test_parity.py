"""fastrnn modules compute torch.nn's function: outputs, final states and every gradient."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import CONFIGURATIONS, compare_configuration, make_inputs, twins
from helpers import compare_with_torch as _compare
from hypothesis import given, settings
from tolerances import assert_close

GRID = [
    (cell, layers, bidir, batch_first, bias, proj, kind)
    for cell, layers, bidir, batch_first, bias, proj, kind in itertools.product(
        ["LSTM", "GRU", "RNN"], [1, 2, 3], [False, True], [False, True], [True, False], [0, 3],
        ["batched", "unbatched", "packed"],
    )
    if not (proj and cell != "LSTM")
]


@pytest.mark.parametrize("cell,layers,bidir,batch_first,bias,proj,kind", GRID)
def test_reference_matches_torch_float64(cell, layers, bidir, batch_first, bias, proj, kind):
    kw = {"proj_size": proj} if proj else {}
    ref, ours = twins(cell, 4, 6, num_layers=layers, bidirectional=bidir,
                      batch_first=batch_first, bias=bias, **kw)
    _compare(ref, ours, T=5, B=3, kind=kind, dtype=torch.float64)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("kind", ["batched", "packed"])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_float32_and_default_state(cell, kind, backend):
    ref, ours = twins(cell, 5, 7, num_layers=2, bidirectional=True, backend=backend,
                      dtype=torch.float32)
    _compare(ref, ours, T=9, B=4, kind=kind, dtype=torch.float32, with_state=False)


def test_relu_nonlinearity_and_dropout_in_eval():
    ref, ours = twins("RNN", 3, 5, num_layers=2, nonlinearity="relu", dropout=0.5)
    ref.eval()
    ours.eval()
    _compare(ref, ours, T=6, B=2, kind="batched", dtype=torch.float64)


def test_dropout_in_training_matches_functional_dropout():
    """Training-mode dropout masks the inter-layer activations as F.dropout does."""
    _, ours = twins("GRU", 3, 5, num_layers=2, dropout=0.5)
    ref_off, _ = twins("GRU", 3, 5, num_layers=2)
    ref_off.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    torch.manual_seed(7)
    out_train, _ = ours.train()(x)
    out_eval, _ = ours.eval()(x)
    assert not torch.allclose(out_train, out_eval)
    assert torch.equal(out_eval, ours(x)[0])
    assert_close(out_eval, ref_off(x)[0], torch.float64)


@settings(max_examples=25, deadline=None)
@given(config=CONFIGURATIONS)
def test_random_configurations(config):
    compare_configuration(config, backend="reference", dtype=torch.float64)


def test_packed_output_keeps_indices_and_order():
    ref, ours = twins("LSTM", 3, 4, bidirectional=True)
    x, hx, lengths = make_inputs(ref, T=6, B=5, kind="packed", dtype=torch.float64)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    out_ref, _ = ref(packed, hx)
    out, _ = ours(packed, hx)
    assert torch.equal(out.batch_sizes, out_ref.batch_sizes)
    assert torch.equal(out.sorted_indices, out_ref.sorted_indices)
    assert torch.equal(out.unsorted_indices, out_ref.unsorted_indices)


def test_reference_padded_steps_are_zero_and_states_from_last_step():
    from fastrnn.reference import lstm_recurrence

    T, B, H = 5, 3, 4
    gx = torch.randn(T, B, 4 * H, dtype=torch.float64)
    w_hh = torch.randn(4 * H, H, dtype=torch.float64)
    h0, c0 = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 3])
    for reverse in (False, True):
        y, h, c = lstm_recurrence(gx, w_hh, h0, c0, lengths=lengths, reverse=reverse)
        for b, n in enumerate(lengths.tolist()):
            assert torch.all(y[n:, b] == 0)
            y1, h1, c1 = lstm_recurrence(gx[:n, b : b + 1], w_hh, h0[b : b + 1], c0[b : b + 1],
                                         reverse=reverse)
            assert_close(y[:n, b], y1[:, 0], torch.float64)
            assert_close(h[b], h1[0], torch.float64)
            assert_close(c[b], c1[0], torch.float64)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reference_half_precision_computes_in_float32(dtype):
    ref, ours = twins("LSTM", 4, 6, num_layers=2, dtype=torch.float64)
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    expected, _ = ref(x)
    out, (h, c) = ours.to(dtype)(x.to(dtype))
    assert out.dtype == h.dtype == c.dtype == dtype
    assert_close(out, expected, dtype)
