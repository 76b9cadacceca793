"""The drop-in contract: constructor, parameters, state_dict, errors, conversions, backends."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from helpers import twins

import fastrnn
from fastrnn.ops import functional

CONFIGS = [
    ("LSTM", (4, 6), {}),
    ("LSTM", (4, 6), {"num_layers": 2, "bidirectional": True, "proj_size": 3}),
    ("LSTM", (4, 6, 3, False), {}),
    ("GRU", (4, 6), {"num_layers": 3, "bidirectional": True, "bias": False}),
    ("RNN", (4, 6, 2, "relu"), {"batch_first": True}),
    ("RNN", (4, 6), {"nonlinearity": "tanh", "dropout": 0.25, "num_layers": 2}),
]


@pytest.mark.parametrize("cell,args,kwargs", CONFIGS)
def test_same_parameters_names_order_and_init(cell, args, kwargs):
    torch.manual_seed(3)
    ref = getattr(torch.nn, cell)(*args, **kwargs)
    torch.manual_seed(3)
    ours = getattr(fastrnn, cell)(*args, **kwargs)
    ref_params, our_params = list(ref.named_parameters()), list(ours.named_parameters())
    assert [n for n, _ in our_params] == [n for n, _ in ref_params]
    for (_, a), (_, b) in zip(our_params, ref_params, strict=True):
        assert torch.equal(a, b)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for attr in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                 "bidirectional", "proj_size", "mode"):
        assert getattr(ours, attr) == getattr(ref, attr)
    assert repr(ours) == repr(ref)
    assert [[p.shape for p in w] for w in ours.all_weights] == [
        [p.shape for p in w] for w in ref.all_weights
    ]


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_same_parameters_and_init(name):
    torch.manual_seed(5)
    ref = getattr(torch.nn, name)(3, 4, bias=False)
    torch.manual_seed(5)
    ours = getattr(fastrnn, name)(3, 4, bias=False)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    assert repr(ours) == repr(ref)


@pytest.mark.parametrize("cell,args,kwargs", CONFIGS)
def test_state_dict_round_trips_both_ways(cell, args, kwargs):
    ref = getattr(torch.nn, cell)(*args, **kwargs)
    ours = getattr(fastrnn, cell)(*args, **kwargs)
    ours.load_state_dict(ref.state_dict())
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    back = getattr(torch.nn, cell)(*args, **kwargs)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(1.0)
    back.load_state_dict(ours.state_dict())
    for a, b in zip(back.parameters(), ours.parameters(), strict=True):
        assert torch.equal(a, b)


CTOR_ERRORS = [
    ((4, 6), {"dropout": 1.5}),
    ((4, 6), {"dropout": True}),
    ((4, 6), {"dropout": "x"}),
    ((4, 0), {}),
    ((0, 6), {}),
    ((4, 6.0), {}),
    ((4.0, 6), {}),
    ((4, 6), {"num_layers": 0}),
    ((4, 6), {"bias": 1}),
    ((4, 6), {"batch_first": "yes"}),
    ((4, 6), {"proj_size": -1}),
    ((4, 6), {"proj_size": 6}),
    ((4, 6), {"nonlinearity": "sigmoid"}),
    ((4, 6), {"proj_size": 2}),
]


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("args,kwargs", CTOR_ERRORS)
def test_constructor_errors_match_torch(cell, args, kwargs):
    try:
        getattr(torch.nn, cell)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - we compare whatever torch raises
        expected = exc
    else:
        expected = None
    if expected is None:
        getattr(fastrnn, cell)(*args, **kwargs)
        return
    with pytest.raises(type(expected)) as actual:
        getattr(fastrnn, cell)(*args, **kwargs)
    assert str(actual.value) == str(expected)


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        fastrnn.LSTM(3, 4, dropout=0.5)


def _lstm_state(*shape):
    return (torch.randn(shape), torch.randn(shape))


FORWARD_ERRORS = [
    ("LSTM", lambda m: m(torch.randn(5))),
    ("GRU", lambda m: m(torch.randn(2, 3, 4, 5))),
    ("RNN", lambda m: m(torch.randn(5))),
    ("LSTM", lambda m: m(torch.randn(5, 2, 3))),
    ("GRU", lambda m: m(torch.randn(5, 2, 3))),
    ("LSTM", lambda m: m(torch.randn(0, 2, 4))),
    ("GRU", lambda m: m(torch.randn(0, 2, 4))),
    ("RNN", lambda m: m(torch.randn(0, 2, 4))),
    ("LSTM", lambda m: m(torch.randn(5, 2, 4).double())),
    ("RNN", lambda m: m(torch.randn(5, 2, 4).double())),
    ("LSTM", lambda m: m(torch.randn(5, 2, 4), _lstm_state(1, 3, 6))),
    ("LSTM", lambda m: m(torch.randn(5, 2, 4), (torch.randn(1, 2, 6), torch.randn(1, 2, 5)))),
    ("LSTM", lambda m: m(torch.randn(5, 2, 4), _lstm_state(2, 6))),
    ("LSTM", lambda m: m(torch.randn(5, 4), _lstm_state(1, 2, 6))),
    ("GRU", lambda m: m(torch.randn(5, 2, 4), torch.randn(2, 2, 6))),
    ("GRU", lambda m: m(torch.randn(5, 2, 4), torch.randn(2, 6))),
    ("RNN", lambda m: m(torch.randn(5, 4), torch.randn(1, 1, 6))),
    ("RNN", lambda m: m(torch.randn(5, 2, 4), torch.randn(1, 2, 7))),
]


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("cell,call", FORWARD_ERRORS)
def test_forward_errors_match_torch(cell, call, backend):
    ref = getattr(torch.nn, cell)(4, 6)
    ours = getattr(fastrnn, cell)(4, 6, backend=backend)
    with pytest.raises(Exception) as expected:
        call(ref)
    with pytest.raises(type(expected.value)) as actual:
        call(ours)
    assert str(actual.value) == str(expected.value)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_packed_state_shape_error_is_clear(backend):
    """torch.nn.LSTM skips this check for packed input and fails inside the kernel with a
    RuntimeError about tensor sizes; fastrnn raises the same type with the usual message."""
    x = torch.nn.utils.rnn.pack_sequence([torch.randn(3, 4), torch.randn(2, 4)])
    ref, ours = twins("LSTM", 4, 6, dtype=torch.float32, backend=backend)
    bad = (torch.randn(1, 3, 6), torch.randn(1, 3, 6))
    with pytest.raises(RuntimeError):
        ref(x, bad)
    message = r"Expected hidden\[0\] size \(1, 2, 6\), got \[1, 3, 6\]"
    with pytest.raises(RuntimeError, match=message):
        ours(x, bad)


def test_empty_batch_works_like_torch():
    ref, ours = twins("GRU", 4, 6, dtype=torch.float32)
    out, h = ours(torch.randn(3, 0, 4))
    ref_out, ref_h = ref(torch.randn(3, 0, 4))
    assert out.shape == ref_out.shape and h.shape == ref_h.shape


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_conversions_copy_pickle_and_save(cell, tmp_path):
    m = getattr(fastrnn, cell)(3, 5, num_layers=2, backend="reference")
    x = torch.randn(4, 2, 3)
    expected = m(x)[0]
    assert m.double()(x.double())[0].dtype == torch.float64
    assert m.half().weight_ih_l0.dtype == torch.float16
    m.to(torch.float32)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert clone.backend == "reference"
        torch.testing.assert_close(clone(x)[0], expected, rtol=1e-3, atol=1e-3)
    path = tmp_path / "m.pt"
    torch.save(m, path)
    loaded = torch.load(path, weights_only=False)
    torch.testing.assert_close(loaded(x)[0], m(x)[0])
    torch.save(m.state_dict(), path)
    fresh = getattr(torch.nn, cell)(3, 5, num_layers=2)
    fresh.load_state_dict(torch.load(path))
    torch.testing.assert_close(fresh(x)[0], m(x)[0])


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be one of"):
        fastrnn.LSTM(3, 4, backend="cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        fastrnn.set_default_backend("fast")


def _count_reference_calls(monkeypatch):
    calls = []
    real = functional.rnn

    def spy(*args, **kwargs):
        calls.append(kwargs["backend"])
        return real(*args, **kwargs)

    monkeypatch.setattr(functional, "rnn", spy)
    return calls


def test_auto_on_cpu_uses_native(monkeypatch):
    calls = _count_reference_calls(monkeypatch)
    fastrnn.LSTM(3, 4)(torch.randn(2, 1, 3))
    assert calls == []
    fastrnn.LSTM(3, 4, backend="reference")(torch.randn(2, 1, 3))
    assert calls == ["reference"]


def test_process_default_from_env_and_setter(monkeypatch):
    calls = _count_reference_calls(monkeypatch)
    monkeypatch.setenv("FASTRNN_BACKEND", "reference")
    assert fastrnn.get_default_backend() == "reference"
    fastrnn.GRU(3, 4)(torch.randn(2, 1, 3))
    assert calls == ["reference"]
    fastrnn.set_default_backend("native")
    fastrnn.GRU(3, 4)(torch.randn(2, 1, 3))
    assert calls == ["reference"]
    fastrnn.GRU(3, 4, backend="reference")(torch.randn(2, 1, 3))
    assert calls == ["reference", "reference"]
    monkeypatch.setenv("FASTRNN_BACKEND", "bogus")
    fastrnn.set_default_backend(None)
    with pytest.raises(ValueError, match="FASTRNN_BACKEND must be one of"):
        fastrnn.get_default_backend()


def test_backward_in_eval_mode_on_reference():
    m = fastrnn.LSTM(3, 4, backend="reference").eval()
    x = torch.randn(5, 2, 3, requires_grad=True)
    m(x)[0].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_inference_mode_and_no_grad_on_reference():
    m = fastrnn.GRU(3, 4, backend="reference")
    x = torch.randn(5, 2, 3)
    expected = m(x)[0].detach()
    with torch.inference_mode():
        torch.testing.assert_close(m(x)[0], expected)
    with torch.no_grad():
        out = m(x)[0]
    assert not out.requires_grad
    torch.testing.assert_close(out, expected)
