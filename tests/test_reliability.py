"""Inputs torch.nn rejects raise torch's exception and message on every backend; meta tensors,
torch.func transforms and forward-mode AD give torch's results; the fallback warning is only
marked as shown once it was emitted."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from helpers import twins
from tolerances import assert_close
from torch.func import functional_call, grad, jacrev, jvp, vmap

import fastrnn
from fastrnn.ops import backend as backend_state

BACKENDS = ["reference", "triton"]
META = "meta"


def _assert_raises_like(torch_call, our_call) -> None:
    """Both calls raise, with the same exception type and message."""
    with pytest.raises(Exception) as expected:
        torch_call()
    with pytest.raises(type(expected.value)) as actual:
        our_call()
    assert str(actual.value) == str(expected.value)


def _module_pair(cell: str, backend: str):
    ref = getattr(torch.nn, cell)(3, 5)
    ours = getattr(fastrnn, cell)(3, 5, backend=backend)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _state(cell: str, which: int, **kw):
    """(1, 4, 5) states, state ``which`` made with ``kw`` (device or dtype)."""
    states = [torch.zeros(1, 4, 5) for _ in range(2 if cell == "LSTM" else 1)]
    states[which] = torch.zeros(1, 4, 5, **kw)
    return tuple(states) if cell == "LSTM" else states[0]


STATE_CASES = [("LSTM", 0), ("LSTM", 1), ("GRU", 0), ("RNN", 0)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell,which", STATE_CASES)
@pytest.mark.parametrize("kw", [{"device": META}, {"dtype": torch.float64}],
                         ids=["meta-state", "float64-state"])
def test_state_of_another_device_or_dtype(backend, cell, which, kw):
    """A meta h0/c0 (torch: not the same device) is never read; a float64 one beside float32
    input and weights raises torch's dtype error."""
    ref, ours = _module_pair(cell, backend)
    x = torch.randn(2, 4, 3)
    hx = _state(cell, which, **kw)
    _assert_raises_like(lambda: ref(x, hx), lambda: ours(x, hx))


def _cell_pair(name: str, backend: str):
    ref = getattr(torch.nn, name)(3, 5)
    ours = getattr(fastrnn, name)(3, 5, backend=backend)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


CELL_CASES = [("LSTMCell", 0), ("LSTMCell", 1), ("GRUCell", 0), ("RNNCell", 0)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,which", CELL_CASES)
@pytest.mark.parametrize("kw", [{"device": META}, {"dtype": torch.float64}],
                         ids=["meta-state", "float64-state"])
def test_cell_state_of_another_device_or_dtype(backend, name, which, kw):
    """torch.nn's error, or (a float64 c beside float32 input, which torch.nn.LSTMCell
    accepts) torch.nn's result, with a warning."""
    ref, ours = _cell_pair(name, backend)
    x = torch.randn(4, 3)
    states = [torch.randn(4, 5) for _ in range(2 if name == "LSTMCell" else 1)]
    states[which] = torch.randn(4, 5, **kw)
    hx = tuple(states) if name == "LSTMCell" else states[0]
    if (name, which, kw.get("dtype")) == ("LSTMCell", 1, torch.float64):
        backend_state._warned.clear()
        with pytest.warns(UserWarning, match="not the same dtype.*torch.nn accepts them"):
            actual = ours(x, hx)
        for a, e in zip(actual, ref(x, hx)):
            assert a.dtype == e.dtype
            assert_close(a, e, torch.float32)
        return
    _assert_raises_like(lambda: ref(x, hx), lambda: ours(x, hx))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cell_integer_input(backend, name):
    ref, ours = _cell_pair(name, backend)
    x = torch.randint(0, 3, (4, 3))
    _assert_raises_like(lambda: ref(x), lambda: ours(x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_meta_input_with_a_cpu_module(backend, cell):
    ref, ours = _module_pair(cell, backend)
    x = torch.randn(2, 4, 3, device=META)
    _assert_raises_like(lambda: ref(x), lambda: ours(x))


def test_functional_api_checks_states():
    """The functional API is checked too, before any kernel launch."""
    lstm = fastrnn.LSTM(3, 5)
    x = torch.randn(2, 4, 3)
    hx = (torch.zeros(1, 4, 5, device=META), torch.zeros(1, 4, 5))
    for backend in BACKENDS:
        with pytest.raises(RuntimeError, match="Input and hidden tensors are not at the same"):
            fastrnn.ops.functional.rnn(
                "LSTM", x, hx, lstm._flat_weights, bias=True, num_layers=1, dropout=0.0,
                training=False, bidirectional=False, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS + ["auto"])
@pytest.mark.parametrize("cell,kwargs", [("LSTM", {"proj_size": 2, "bidirectional": True}),
                                         ("GRU", {"num_layers": 2}), ("RNN", {})])
def test_meta_module_and_input(backend, cell, kwargs):
    """Shape inference on the meta device: meta outputs of torch.nn's shapes and dtypes."""
    ref = getattr(torch.nn, cell)(3, 5, device=META, **kwargs)
    ours = getattr(fastrnn, cell)(3, 5, device=META, backend=backend, **kwargs)
    x = torch.randn(6, 4, 3, device=META)
    expected, actual = ref(x), ours(x)
    flat = [expected[0], *(expected[1] if cell == "LSTM" else (expected[1],))]
    got = [actual[0], *(actual[1] if cell == "LSTM" else (actual[1],))]
    for e, a in zip(flat, got):
        assert a.device.type == META and a.shape == e.shape and a.dtype == e.dtype


def test_meta_cell():
    cell = fastrnn.LSTMCell(3, 5, device=META, backend="triton")
    h, c = cell(torch.randn(4, 3, device=META))
    assert h.device.type == META and h.shape == c.shape == (4, 5)


def _lstm_pair():
    ours = fastrnn.LSTM(3, 5, backend="triton")
    ref = fastrnn.LSTM(3, 5, backend="reference")
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def test_torch_func_grad_and_jacrev_match_the_reference():
    backend_state._warned.clear()
    ours, ref = _lstm_pair()
    x = torch.randn(4, 2, 3)
    params = dict(ours.named_parameters())

    def loss(module):
        return lambda p, x: functional_call(module, p, (x,))[0].square().sum()

    with pytest.warns(UserWarning, match="torch.func"):
        g = grad(loss(ours))(params, x)
    expected = grad(loss(ref))(params, x)
    for name in params:
        assert_close(g[name], expected[name], torch.float32, msg=name)
    jac = jacrev(lambda x: ours(x)[1][1].sum())(x)
    assert_close(jac, jacrev(lambda x: ref(x)[1][1].sum())(x), torch.float32)
    xs = torch.randn(3, 4, 2, 3)
    per_sample = vmap(grad(loss(ours)), in_dims=(None, 0))(params, xs)
    assert_close(per_sample["weight_hh_l0"],
                 vmap(grad(loss(ref)), in_dims=(None, 0))(params, xs)["weight_hh_l0"],
                 torch.float32)


def test_torch_func_jvp_is_not_zero():
    """torch.func.jvp through the fused op gave a zero tangent; now the reference's."""
    ours, ref = _lstm_pair()
    x, t = torch.randn(4, 2, 3), torch.randn(4, 2, 3)
    _, tangent = jvp(lambda x: ours(x)[0].sum(), (x,), (t,))
    _, expected = jvp(lambda x: ref(x)[0].sum(), (x,), (t,))
    assert expected.abs() > 0
    assert_close(tangent, expected, torch.float32)


def test_forward_mode_ad_matches_the_reference():
    ours, ref = _lstm_pair()
    x, t = torch.randn(4, 2, 3), torch.randn(4, 2, 3)
    with fwAD.dual_level():
        actual = fwAD.unpack_dual(ours(fwAD.make_dual(x, t))[0]).tangent
        expected = fwAD.unpack_dual(ref(fwAD.make_dual(x, t))[0]).tangent
    assert_close(actual, expected, torch.float32)


def test_cell_under_torch_func_grad():
    cell = fastrnn.GRUCell(3, 5, backend="triton")
    ref = fastrnn.GRUCell(3, 5, backend="reference")
    ref.load_state_dict(cell.state_dict())
    x = torch.randn(2, 3)
    assert_close(grad(lambda x: cell(x).sum())(x), grad(lambda x: ref(x).sum())(x),
                 torch.float32)


def test_fallback_warning_turned_into_an_error_is_raised_every_time():
    backend_state._warned.clear()
    ours = fastrnn.LSTM(3, 5, backend="triton").double()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            with pytest.raises(UserWarning, match="cannot fuse"):
                ours(x)
    with pytest.warns(UserWarning, match="cannot fuse"):
        ours(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(x)  # shown once: silent from now on


def test_valid_states_still_pass_the_check():
    """Same device and dtype (and any dtype under autocast): no error, torch.nn's results."""
    ref, ours = twins("LSTM", 3, 5, backend="triton", dtype=torch.float32)
    x = torch.randn(2, 4, 3)
    hx = _state("LSTM", 0)
    assert_close(ours(x, hx)[0], ref(x, hx)[0], torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = fastrnn.LSTM(3, 5, backend="reference")(x, _state("LSTM", 1,
                                                                 dtype=torch.float64))
    assert out.shape == (2, 4, 5)


@pytest.mark.parametrize("layers", [1, 3])
def test_lstm_state_of_the_wrong_kind_gets_torchs_error(layers):
    """A tensor, a 1-tuple or a 3-tuple as an LSTM's hx: torch.nn's exception and message."""
    x = torch.randn(4, 2, 3)
    for hx in (torch.zeros(1, 2, 5), torch.zeros(3, 2, 5), (torch.zeros(1, 2, 5),),
               (torch.zeros(1, 2, 5),) * 3, (torch.zeros(3, 2, 5),) * 3):
        errors = []
        for cls in (torch.nn.LSTM, fastrnn.LSTM):
            with pytest.raises(Exception) as info:  # noqa: PT011 - compared below
                cls(3, 5, num_layers=layers)(x, hx)
            errors.append((type(info.value), str(info.value)))
        assert errors[0] == errors[1]
