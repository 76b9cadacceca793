"""Multi-head (block-diagonal) recurrences: ``num_heads`` on RNN, LSTM and GRU, and the
FlashRNN weight conversions."""

from __future__ import annotations

import pytest
import torch
from helpers import by_hand
from tolerances import assert_close
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fastrnn

F64 = torch.float64
CLASSES = {"LSTM": fastrnn.LSTM, "GRU": fastrnn.GRU, "RNN": fastrnn.RNN}


def _step(mode, p, sfx, x, h, c, N):
    """One step, the recurrent product written per head: gate g of head n sees only h's
    n-th slice through its own D x D block."""
    H = h.shape[1]
    D = H // N
    w_hh = p["weight_hh" + sfx]
    G = w_hh.shape[0] // H
    rec = torch.zeros(h.shape[0], G * H, dtype=h.dtype)
    for g in range(G):
        for n in range(N):
            block = w_hh[g * H + n * D:g * H + (n + 1) * D]
            rec[:, g * H + n * D:g * H + (n + 1) * D] = h[:, n * D:(n + 1) * D] @ block.T
    gi = x @ p["weight_ih" + sfx].T + p["bias_ih" + sfx]
    gh = rec + p["bias_hh" + sfx]
    if mode == "GRU":
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n_ = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n_ + z * h, None
    if mode == "RNN":
        return torch.tanh(gi + gh), None
    i, f, g_, o = (gi + gh).chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g_)
    return torch.sigmoid(o) * torch.tanh(c), c


def _oracle(m, mode, x, h0, c0, lengths):
    """Every sequence alone over its length, every layer and direction by hand."""
    p = dict(m.named_parameters())

    def step(sfx, x_t, state):
        h, c = _step(mode, p, sfx, x_t, state[0], state[1] if len(state) > 1 else None,
                     m.num_heads)
        return (h,) if c is None else (h, c)

    out = by_hand(m, x, (h0,) if c0 is None else (h0, c0), lengths, step)
    return out[0], out[1], (out[2] if c0 is not None else None)


def _run(m, mode, x, h0, c0, lengths):
    hx = (h0, c0) if mode == "LSTM" else h0
    out, state = m(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)
    out = pad_packed_sequence(out, total_length=x.shape[0])[0]
    h_n, c_n = state if mode == "LSTM" else (state, None)
    return out, h_n, c_n


def _grads(tensors, leaves):
    weights = torch.Generator().manual_seed(3)
    loss = sum((t * torch.randn(t.shape, generator=weights, dtype=t.dtype)).sum()
               for t in tensors if t is not None)
    return torch.autograd.grad(loss, leaves)


def _inputs(mode, T, B, I, H, rows, dtype):
    x = torch.randn(T, B, I, dtype=dtype, requires_grad=True)
    h0 = torch.randn(rows, B, H, dtype=dtype, requires_grad=True)
    c0 = torch.randn(rows, B, H, dtype=dtype, requires_grad=True) if mode == "LSTM" else None
    return x, h0, c0


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_heads_match_the_per_head_oracle(mode, backend):
    m = CLASSES[mode](3, 6, num_layers=2, bidirectional=True, num_heads=3,
                      backend=backend).to(F64)
    assert m.weight_hh_l1_reverse.shape == ({"LSTM": 4, "GRU": 3, "RNN": 1}[mode] * 6, 2)
    x, h0, c0 = _inputs(mode, 5, 3, 3, 6, 4, F64)
    lengths = torch.tensor([3, 5, 1])
    got = _run(m, mode, x, h0, c0, lengths)
    want = _oracle(m, mode, x, h0, c0, lengths)
    for name, a, b in zip(("output", "h_n", "c_n"), got, want):
        if b is not None:
            assert_close(a, b, F64, msg=name)
    leaves = [x, h0, *([c0] if c0 is not None else []), *m.parameters()]
    for i, (a, b) in enumerate(zip(_grads(got, leaves), _grads(want, leaves))):
        assert_close(a, b, F64, msg=f"grad {i}")


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_triton_heads_match_the_reference(mode, monkeypatch):
    """The fused kernels (interpreter) with the heads as the program groups of one launch per
    direction (each head its own D x D blocks, all heads one way): outputs, states and every
    gradient, the blocks' included."""
    from fastrnn.kernels.common import HEADS_FORWARD, HEADS_REVERSE

    from fastrnn.ops import triton_ops

    launches = []
    layer = triton_ops.layer

    def spy(*args, **kwargs):
        launches.append((tuple(args[2].shape), kwargs["reverse"]))
        return layer(*args, **kwargs)

    monkeypatch.setattr(triton_ops, "layer", spy)
    torch.manual_seed(0)
    ref = CLASSES[mode](3, 6, num_heads=2, bidirectional=True, backend="reference")
    ours = CLASSES[mode](3, 6, num_heads=2, bidirectional=True, backend="triton")
    ours.load_state_dict(ref.state_dict())
    x, h0, c0 = _inputs(mode, 4, 3, 3, 6, 2, torch.float32)
    lengths = torch.tensor([4, 2, 3])
    want, got = _run(ref, mode, x, h0, c0, lengths), _run(ours, mode, x, h0, c0, lengths)
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[mode]
    assert launches == [((2, G * 3, 3), HEADS_FORWARD), ((2, G * 3, 3), HEADS_REVERSE)]
    for a, b in zip(got, want):
        if b is not None:
            assert_close(a, b, torch.float32)
    leaves = [x, h0, *([c0] if c0 is not None else [])]
    for a, b in zip(_grads(got, [*leaves, *ours.parameters()]),
                    _grads(want, [*leaves, *ref.parameters()])):
        assert_close(a, b, torch.float32)


def test_one_head_is_the_dense_layer_and_bad_heads_raise():
    torch.manual_seed(1)
    dense = fastrnn.LSTM(3, 8, num_layers=2)
    torch.manual_seed(1)
    one = fastrnn.LSTM(3, 8, num_layers=2, num_heads=1)
    assert {k: v.shape for k, v in one.state_dict().items()} == {
        k: v.shape for k, v in torch.nn.LSTM(3, 8, num_layers=2).state_dict().items()}
    x = torch.randn(5, 2, 3)
    assert torch.equal(one(x)[0], dense(x)[0]) and repr(one) == repr(dense)
    with pytest.raises(ValueError, match=r"hidden_size \(6\) must be divisible by num_heads "
                                         r"\(4\)"):
        fastrnn.GRU(3, 6, num_heads=4)
    for bad in (0, -2, True, 2.0):
        with pytest.raises(ValueError, match="num_heads must be a positive integer"):
            fastrnn.RNN(3, 6, num_heads=bad)
    with pytest.raises(ValueError, match="does not combine with proj_size"):
        fastrnn.LSTM(3, 6, num_heads=2, proj_size=2)
    headed = fastrnn.GRU(3, 6, num_heads=3)
    assert "num_heads=3" in repr(headed)
    with pytest.warns(UserWarning, match="torch.nn has no multi-head layer"):
        assert fastrnn.to_torch(headed) is headed
    with pytest.raises(ValueError, match="has no torch.nn twin"):
        torch.jit.script(headed)


@pytest.mark.parametrize("backend", ["native", "triton"])
def test_dropconnect_on_the_blocks_is_the_same_on_every_backend(backend):
    ref = fastrnn.LSTM(3, 6, num_heads=3, dropconnect=0.4, backend="reference")
    ours = fastrnn.LSTM(3, 6, num_heads=3, dropconnect=0.4, backend=backend)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 3)
    torch.manual_seed(4)
    want = ref(x)[0]
    torch.manual_seed(4)
    assert_close(ours(x)[0], want, torch.float32)
    torch.manual_seed(5)
    assert not torch.allclose(ref(x)[0], want)


def test_flashrnn_conversion_round_trip():
    torch.manual_seed(2)
    for cls in CLASSES.values():
        m = cls(3, 8, num_heads=4, batch_first=True, backend="reference")
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p))
        args = fastrnn.to_flashrnn(m)
        assert args["R"].shape[1:] == (4, 2, 2) and args["b"].shape[1:] == (4, 2)
        back = fastrnn.from_flashrnn(args["W"], args["R"], args["b"], args["function"],
                                     batch_first=True, backend="reference")
        assert back.num_heads == 4 and type(back) is cls
        x = torch.randn(2, 5, 3)
        assert_close(back(x)[0], m(x)[0], torch.float32)
    with pytest.raises(ValueError, match="FlashRNN has no RNN_RELU cell"):
        fastrnn.to_flashrnn(fastrnn.RNN(3, 4, nonlinearity="relu"))
    with pytest.raises(ValueError, match="function must be one of"):
        fastrnn.from_flashrnn(args["W"], args["R"], args["b"], "mlstm")


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_converted_weights_compute_flashrnns_vanilla_backend(mode):
    """FlashRNN's own pure-PyTorch backend (it imports and runs without a GPU) on weights from
    :func:`fastrnn.to_flashrnn` gives the fastrnn layer's outputs."""
    flashrnn = pytest.importorskip("flashrnn").flashrnn
    torch.manual_seed(3)
    B, T, I, N, D = 2, 6, 3, 3, 4
    m = CLASSES[mode](I, N * D, num_heads=N, batch_first=True, backend="reference").to(F64)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    args = fastrnn.to_flashrnn(m)
    x = torch.randn(B, T, I, dtype=F64)
    Wx = (x @ args["W"].T).view(B, T, -1, N, D)
    h, _ = flashrnn(Wx, args["R"], args["b"], function=args["function"], backend="vanilla",
                    dtype="float64")
    assert_close(h[0].reshape(B, T, N * D), m(x)[0], F64)


def test_block_diagonal_keeps_exact_zeros_off_the_blocks():
    """An inf in one head's block stays in that head: the other heads' outputs stay finite."""
    from fastrnn.nn.common import block_diagonal

    w = torch.randn(4 * 6, 2)
    dense = block_diagonal(w, 3)
    assert torch.equal(dense.reshape(4, 3, 2, 3, 2)[:, 0, :, 1], torch.zeros(4, 2, 2))
    w[0, 0] = float("inf")
    dense = block_diagonal(w, 3)
    assert not dense.isnan().any() and dense[:, 2:].isfinite().all()
    m = fastrnn.GRU(3, 6, num_heads=3, backend="reference")
    with torch.no_grad():
        m.weight_hh_l0[0, 0] = float("inf")
    out = m(torch.randn(2, 1, 3), torch.ones(1, 1, 6))[0]
    assert out[-1, 0, 2:].isfinite().all()  # heads 1 and 2 never see head 0's inf


def test_triton_heads_double_backward_matches_the_reference():
    """create_graph=True through the fused heads: second derivatives equal the reference's."""
    torch.manual_seed(1)
    ref = fastrnn.GRU(3, 6, num_heads=3, backend="reference")
    ours = fastrnn.GRU(3, 6, num_heads=3, backend="triton")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 2, 3, requires_grad=True)
    results = []
    for m in (ref, ours):
        (gx,) = torch.autograd.grad(m(x)[0].square().sum(), [x], create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum(), [x, m.weight_hh_l0]))
    for a, b in zip(*results):
        assert_close(b, a, torch.float32)
