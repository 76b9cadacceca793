"""SLSTM and SLSTMCell: xLSTM's sLSTM against an independent step-by-step oracle and
FlashRNN's own pure-PyTorch backend."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from helpers import by_hand
from tolerances import assert_close
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fastrnn
from fastrnn.ops import backend as backend_state

F64 = torch.float64


def _step(x, state, w_ih, w_hh_blocks, b, N):
    """The paper's equations, one element at a time where it matters: the recurrent product
    per head, the stabiliser's first-step rule per element."""
    h, c, n, m = state
    H = h.shape[1]
    D = H // N
    rec = torch.zeros(h.shape[0], 4 * H, dtype=h.dtype)
    for g in range(4):
        for k in range(N):
            block = w_hh_blocks[g * H + k * D:g * H + (k + 1) * D]
            rec[:, g * H + k * D:g * H + (k + 1) * D] = h[:, k * D:(k + 1) * D] @ block.T
    pre = x @ w_ih.T + b + rec
    i_, f_, z_, o_ = pre[:, :H], pre[:, H:2 * H], pre[:, 2 * H:3 * H], pre[:, 3 * H:]
    log_f = -torch.log1p(torch.exp(-f_)) + m  # log sigmoid, written out
    m_new = torch.where(n == 0, i_, torch.maximum(log_f, i_))
    i_g, f_g = torch.exp(i_ - m_new), torch.exp(log_f - m_new)
    c = f_g * c + i_g * torch.tanh(z_)
    n = f_g * n + i_g
    h = 1 / (1 + torch.exp(-o_)) * c / n
    return h, c, n, m_new


def _oracle(m, x, hx, lengths):
    p = dict(m.named_parameters())

    def step(sfx, x_t, state):
        bias = p["bias_ih" + sfx] + p["bias_hh" + sfx]
        return _step(x_t, state, p["weight_ih" + sfx], p["weight_hh" + sfx], bias, m.num_heads)

    return by_hand(m, x, hx, lengths, step)


def _grads(tensors, leaves):
    g = torch.Generator().manual_seed(5)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in tensors)
    return torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("heads,zero_state", [(1, False), (2, True)])
def test_reference_matches_the_papers_equations(heads, zero_state):
    m = fastrnn.SLSTM(3, 6, num_layers=2, bidirectional=True, num_heads=heads,
                      backend="reference").to(F64)
    T, B = 5, 3
    x = torch.randn(T, B, 3, dtype=F64, requires_grad=True)
    if zero_state:
        hx = tuple(torch.zeros(4, B, 6, dtype=F64, requires_grad=True) for _ in range(4))
    else:  # any state with n > 0
        h, c, n, mm = (torch.randn(4, B, 6, dtype=F64) for _ in range(4))
        hx = tuple(t.requires_grad_() for t in (h, c, n.abs() + 0.5, mm))
    lengths = torch.tensor([5, 2, 4])
    out, state = m(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)
    out = pad_packed_sequence(out, total_length=T)[0]
    want = _oracle(m, x, hx, lengths)
    for name, got, exp in zip(("y", "h", "c", "n", "m"), (out, *state), want):
        assert_close(got, exp, F64, msg=name)
    leaves = [x, *hx, *m.parameters()]
    for i, (a, b) in enumerate(zip(_grads((out, *state), leaves), _grads(want, leaves))):
        assert_close(a, b, F64, msg=f"grad {i}")


def test_first_step_from_zero_state_sets_the_stabiliser_to_the_input_gate():
    """From n = 0 the stabiliser starts at i~ (so n' = 1), as xLSTM and FlashRNN start it."""
    m = fastrnn.SLSTM(3, 4, backend="reference").to(F64)
    with torch.no_grad():
        m.bias_ih_l0[:4] = -3.0  # i~ below log sigmoid(f~): max(log f + 0, i~) would differ
    x = torch.randn(1, 2, 3, dtype=F64)
    _, (h, c, n, mm) = m(x)
    pre = x[0] @ m.weight_ih_l0.T + m.bias_ih_l0 + m.bias_hh_l0
    assert_close(mm[0], pre[:, :4], F64)
    assert_close(n[0], torch.ones_like(n[0]), F64)
    assert_close(c[0], torch.tanh(pre[:, 8:12]), F64)


def test_gradcheck_and_the_stabiliser_cancels():
    m = fastrnn.SLSTM(2, 4, num_heads=2, backend="reference").to(F64)
    params = dict(m.named_parameters())
    x = torch.randn(3, 2, 2, dtype=F64, requires_grad=True)
    w = params["weight_hh_l0"].detach().clone().requires_grad_(True)

    def f(x, w):
        out, state = torch.func.functional_call(m, {**params, "weight_hh_l0": w}, (x,))
        return out, *state

    assert torch.autograd.gradcheck(f, (x, w))
    # h depends on c / n only: a shifted stabiliser (c, n scaled by exp(-s), m + s) changes
    # nothing but m
    hx = tuple(torch.randn(1, 2, 4, dtype=F64) for _ in range(4))
    h0, c0, n0, m0 = hx[0], hx[1], hx[2].abs() + 0.5, hx[3]
    s = 0.7
    a = m(x, (h0, c0, n0, m0))
    b = m(x, (h0, c0 * math.exp(-s), n0 * math.exp(-s), m0 + s))
    assert_close(a[0], b[0], F64)


def test_cells_layers_contract_and_errors():
    backend_state._warned.clear()
    layer = fastrnn.SLSTM(3, 4, num_heads=2)
    cell = fastrnn.SLSTMCell(3, 4, num_heads=2)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(6, 2, 3)
    out, state = layer(x)
    hx = None
    for t in range(6):
        hx = cell(x[t], hx)
        assert_close(hx[0], out[t], torch.float32)
    for got, want in zip(hx, state):
        assert_close(got, want[0], torch.float32)
    assert [t.shape for t in cell(x[0, 0])] == [(4,)] * 4
    single, single_state = layer(x[:, 0])
    assert_close(single, out[:, 0], torch.float32) and len(single_state) == 4
    assert repr(layer) == "SLSTM(3, 4, num_heads=2)" and "num_heads=2" in repr(cell)
    assert layer.weight_hh_l0.shape == (16, 2)
    with pytest.raises(ValueError, match="the sLSTM cell is not part of torch.nn"):
        fastrnn.SLSTM(3, 4, backend="native")(x)
    tri = fastrnn.SLSTM(3, 4, num_heads=2, backend="triton")
    tri.load_state_dict(layer.state_dict())
    layer2 = fastrnn.SLSTM(3, 4, num_heads=2, backend="reference")
    layer2.load_state_dict(layer.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fused: no fallback
        fused = tri(x)
    assert_close(fused[0], layer2(x)[0], torch.float32)
    with pytest.raises(RuntimeError, match="expects hx as a tuple of 4 tensors"):
        layer(x, torch.zeros(1, 2, 4))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[2\] size \(1, 2, 4\)"):
        layer(x, (torch.zeros(1, 2, 4),) * 2 + (torch.zeros(1, 3, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(RuntimeError, match="every tensor of hx should also be 3-D"):
        layer(x, (torch.zeros(2, 4),) * 4)
    with pytest.raises(ValueError, match="proj_size argument is not supported by SLSTM"):
        fastrnn.SLSTM(3, 4, proj_size=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'zoneout'"):
        fastrnn.SLSTM(3, 4, zoneout=0.1)
    with pytest.raises(ValueError, match="must be divisible by num_heads"):
        fastrnn.SLSTMCell(3, 4, num_heads=3)
    with pytest.raises(RuntimeError, match="input has inconsistent input_size"):
        cell(torch.randn(2, 5))
    with pytest.raises(RuntimeError, match="TorchScript cannot compile fastrnn.SLSTM"):
        torch.jit.script(layer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.eval()
        x.requires_grad_(True)
        layer(x)[0].sum().backward()  # backward in evaluation mode
    assert x.grad is not None and all(p.grad is not None for p in layer.parameters())


def test_flashrnn_slstm_computes_the_same_function():
    """FlashRNN's vanilla sLSTM on weights from to_flashrnn, from a zero state."""
    flashrnn = pytest.importorskip("flashrnn").flashrnn
    torch.manual_seed(0)
    B, T, I, N, D = 2, 7, 3, 2, 4
    m = fastrnn.SLSTM(I, N * D, num_heads=N, batch_first=True, backend="reference").to(F64)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p))
    args = fastrnn.to_flashrnn(m)
    assert args["function"] == "slstm"
    x = torch.randn(B, T, I, dtype=F64)
    Wx = (x @ args["W"].T).view(B, T, 4, N, D)
    h, last = flashrnn(Wx, args["R"], args["b"], function="slstm", backend="vanilla",
                       dtype="float64")
    out, state = m(x)
    assert_close(h[0].reshape(B, T, N * D), out, F64)
    for k in range(4):  # h, c, n, m
        assert_close(last[k].reshape(B, N * D), state[k][0], F64)
    back = fastrnn.from_flashrnn(args["W"], args["R"], args["b"], "slstm", batch_first=True,
                                 backend="reference")
    assert type(back) is fastrnn.SLSTM
    assert_close(back(x)[0], out, F64)
