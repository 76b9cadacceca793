"""The cells match torch.nn's cells: outputs, every gradient and every error."""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_close

import fastrnn

CELLS = ["LSTMCell", "GRUCell", "RNNCell"]


def _twins(name, *args, backend="reference", **kwargs):
    ref = getattr(torch.nn, name)(*args, **kwargs).double()
    ours = getattr(fastrnn, name)(*args, backend=backend, **kwargs).double()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_cell_parity(name, bias, batched, with_state, backend):
    kw = {"nonlinearity": "relu"} if name == "RNNCell" and bias else {}
    ref, ours = _twins(name, 5, 7, bias=bias, backend=backend, **kw)
    shape = (3, 5) if batched else (5,)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    hshape = shape[:-1] + (7,)
    hx = None
    if with_state:
        h = torch.randn(hshape, dtype=torch.float64, requires_grad=True)
        c = torch.randn(hshape, dtype=torch.float64, requires_grad=True)
        hx = (h, c) if name == "LSTMCell" else h
    results = []
    for module in (ref, ours):
        out = module(x, hx)
        outs = out if isinstance(out, tuple) else (out,)
        loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum()
                   for o in outs)
        leaves = [x] + ([] if hx is None else list(hx if isinstance(hx, tuple) else (hx,)))
        grads = torch.autograd.grad(loss, leaves + list(module.parameters()))
        results.append((outs, grads))
    (o1, g1), (o2, g2) = results
    for a, b in zip(o2 + g2, o1 + g1, strict=True):
        assert a.shape == b.shape
        assert_close(a, b, torch.float64)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize(
    "make_call",
    [
        lambda m, c: m(torch.randn(2, 3, 4, dtype=torch.float64)),
        lambda m, c: m(torch.randn(2, 3, dtype=torch.float64)),
        lambda m, c: m(torch.randn(2, 5, dtype=torch.float64), c(3, 7)),
        lambda m, c: m(torch.randn(2, 5, dtype=torch.float64), c(2, 6)),
        lambda m, c: m(torch.randn(2, 5, dtype=torch.float64), c(2, 3, 7)),
        lambda m, c: m(torch.randn(2, 5, dtype=torch.float32)),
    ],
    ids=["3d-input", "input-size", "batch", "hidden-size", "3d-hidden", "dtype"],
)
def test_cell_errors_match_torch(name, make_call):
    ref, ours = _twins(name, 5, 7)

    def state(*shape):
        h = torch.randn(shape, dtype=torch.float64)
        return (h, h.clone()) if name == "LSTMCell" else h

    with pytest.raises(Exception) as expected:
        make_call(ref, state)
    with pytest.raises(type(expected.value)) as actual:
        make_call(ours, state)
    assert str(actual.value) == str(expected.value)


def test_rnn_cell_unknown_nonlinearity_errors_like_torch():
    ref = torch.nn.RNNCell(2, 3, nonlinearity="foo")
    ours = fastrnn.RNNCell(2, 3, nonlinearity="foo", backend="reference")
    for module in (ref, ours):
        with pytest.raises(RuntimeError, match="Unknown nonlinearity: foo"):
            module(torch.randn(1, 2))
