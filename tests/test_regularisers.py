"""Zoneout and DropConnect on the recurrent layers (haste's, AWD-LSTM's)."""

from __future__ import annotations

import warnings

import pytest
import torch
from tolerances import assert_close

import fastrnn


def _loop(cell: torch.nn.Module, x, h, c, p: float):
    """The zoneout paper's evaluation rule, stepped by hand: h = p h_prev + (1 - p) h_new."""
    outs = []
    for t in range(x.shape[0]):
        if c is None:
            new = cell(x[t], h)
            h = p * h + (1 - p) * new
        else:
            nh, nc = cell(x[t], (h, c))
            h, c = p * h + (1 - p) * nh, p * c + (1 - p) * nc
        outs.append(h)
    return torch.stack(outs), h, c


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_zoneout_in_evaluation_is_the_expectation(name):
    ours = getattr(fastrnn, name)(3, 5, zoneout=0.3, backend="reference").eval()
    cell = getattr(torch.nn, name + "Cell")(3, 5)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in ours.state_dict().items()})
    x = torch.randn(6, 2, 3)
    h0, c0 = torch.randn(2, 5), torch.randn(2, 5) if name == "LSTM" else None
    hx = (h0[None], c0[None]) if name == "LSTM" else h0[None]
    out, state = ours(x, hx)
    want, h_n, c_n = _loop(cell, x, h0, c0, 0.3)
    assert_close(out, want, torch.float32)
    assert_close((state[0] if name == "LSTM" else state)[0], h_n, torch.float32)
    if name == "LSTM":
        assert_close(state[1][0], c_n, torch.float32)


def test_zoneout_in_training_keeps_elements_and_is_reproducible():
    lstm = fastrnn.LSTM(3, 4, zoneout=(0.5, 0.5), backend="reference")
    x, h0 = torch.randn(20, 3, 3), torch.randn(1, 3, 4)
    hx = (h0, torch.randn(1, 3, 4))
    torch.manual_seed(7)
    out, _ = lstm(x, hx)
    torch.manual_seed(7)
    again, _ = lstm(x, hx)
    assert torch.equal(out, again)  # masks from torch's generator
    stays = (out[1:] == out[:-1]).float().mean()  # a kept element repeats the previous value
    assert 0.3 < stays < 0.7
    out.sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in lstm.parameters())
    assert "zoneout=(0.5, 0.5)" in repr(lstm)


def test_zoneout_backends():
    """torch.nn has no zoneout (the fused kernels' is tested in test_zoneout_triton)."""
    x = torch.randn(4, 2, 3)
    with pytest.raises(ValueError, match="zoneout is not part of torch.nn"):
        fastrnn.GRU(3, 4, zoneout=0.1, backend="native")(x)
    for bad in (1.0, -0.1, (0.1, 0.2)):
        with pytest.raises(ValueError, match="zoneout"):
            fastrnn.GRU(3, 4, zoneout=bad)


@pytest.mark.parametrize("backend", ["reference", "triton", "native"])
def test_dropconnect_masks_w_hh_once_per_call_on_every_backend(backend):
    """The same seed draws the same W_hh masks on every backend: outputs and gradients equal
    the reference's; evaluation uses W_hh as it is."""
    kwargs = dict(num_layers=2, bidirectional=True, dropconnect=0.4)
    ours = fastrnn.LSTM(3, 5, backend=backend, **kwargs)
    ref = fastrnn.LSTM(3, 5, backend="reference", **kwargs)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 3, requires_grad=True)
    results = []
    for module in (ours, ref):
        torch.manual_seed(11)
        out, _ = module(x)
        grads = torch.autograd.grad(out.square().sum(), [x, *module.parameters()])
        results.append((out, *grads))
    for a, e in zip(*results, strict=True):
        assert_close(a, e, torch.float32)
    plain = fastrnn.LSTM(3, 5, backend=backend, num_layers=2, bidirectional=True)
    plain.load_state_dict(ours.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not torch.allclose(results[0][0], plain(x)[0])  # training: masked
        ours.eval()
        plain.eval()
        assert_close(ours(x)[0], plain(x)[0], torch.float32)  # evaluation: W_hh itself


def test_lightning_models_take_zoneout_and_dropconnect():
    from fastrnn.lightning import SequenceClassifier

    model = SequenceClassifier(input_size=3, num_classes=2, cell="lstm", zoneout=0.1,
                               dropconnect=0.2, backend="reference")
    rnn = model.encoder.rnn
    assert rnn.zoneout == (0.1, 0.1) and rnn.dropconnect == 0.2
    assert model(torch.randn(4, 7, 3)).shape == (4, 2)
    with pytest.raises(ValueError, match="need fastrnn's modules"):
        SequenceClassifier(input_size=3, num_classes=2, zoneout=0.1, backend="torch")
