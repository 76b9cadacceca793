"""fastrnn modules on the triton backend (interpreter) compute torch.nn's function and gradients."""

from __future__ import annotations

import warnings

import pytest
import torch
from fastrnn.kernels import common, launch
from helpers import CONFIGURATIONS, compare_configuration, make_inputs, twins
from helpers import compare_with_torch as _compare
from hypothesis import given, settings
from tolerances import assert_close

import fastrnn
from fastrnn.ops import backend as backend_state


@pytest.fixture
def launches(monkeypatch):
    """Counts forward kernel launches, to prove the fused path ran."""
    calls = []
    forward = launch.forward

    def spy(*args, **kwargs):
        calls.append(args[2].shape[0])  # directions in this launch (w_hh: (D, G*H, P))
        return forward(*args, **kwargs)

    monkeypatch.setattr(launch, "forward", spy)
    return calls


CASES = [
    ("LSTM", dict(num_layers=2, bidirectional=True), "packed"),
    ("LSTM", dict(batch_first=True, bias=False, proj_size=3), "batched"),
    ("LSTM", dict(num_layers=2, proj_size=4, bidirectional=True), "unbatched"),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True), "packed"),
    ("GRU", dict(bias=False), "unbatched"),
    ("RNN", dict(num_layers=2, bidirectional=True), "packed"),
    ("RNN", dict(nonlinearity="relu", batch_first=True, bias=False), "batched"),
]


@pytest.mark.parametrize("cell,kwargs,kind", CASES)
def test_matches_torch_nn(launches, cell, kwargs, kind):
    ref, ours = twins(cell, 4, 6, backend="triton", dtype=torch.float32, **kwargs)
    _compare(ref, ours, T=5, B=3, kind=kind, dtype=torch.float32)
    layers, dirs = kwargs.get("num_layers", 1), 1 + kwargs.get("bidirectional", False)
    assert launches == [dirs] * layers  # both directions of a layer share one launch


@settings(max_examples=25, deadline=None)
@given(config=CONFIGURATIONS)
def test_random_configurations(config):
    """Any mix of the constructor's options and input kinds: torch.nn's outputs and every
    gradient (the saved values' layout, the projection written into it and the gradients
    written over it, in every combination)."""
    compare_configuration(config, backend="triton", dtype=torch.float32)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_default_state_and_odd_hidden_size(launches, cell):
    ref, ours = twins(cell, 3, 37, backend="triton", dtype=torch.float32)
    _compare(ref, ours, T=4, B=3, kind="batched", dtype=torch.float32, with_state=False)
    assert launches


@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells(launches, cell):
    ref = getattr(torch.nn, cell)(4, 9)
    ours = getattr(fastrnn, cell)(4, 9, backend="triton")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 4, requires_grad=True)
    h = torch.randn(3, 9, requires_grad=True)
    hx = (h, torch.randn(3, 9, requires_grad=True)) if cell == "LSTMCell" else h
    out_ref, out = ref(x, hx), ours(x, hx)
    outs_ref = out_ref if isinstance(out_ref, tuple) else (out_ref,)
    outs = out if isinstance(out, tuple) else (out,)
    leaves = [x, *(hx if isinstance(hx, tuple) else (hx,)), *ref.parameters()]
    ours_leaves = [x, *(hx if isinstance(hx, tuple) else (hx,)), *ours.parameters()]
    weights = [torch.randn_like(o) for o in outs_ref]
    g_ref = torch.autograd.grad(outs_ref, leaves, weights)
    g = torch.autograd.grad(outs, ours_leaves, weights)
    for a, e in zip((*outs, *g), (*outs_ref, *g_ref)):
        assert_close(a, e, torch.float32)
    assert launches


@pytest.mark.parametrize("cell,kwargs,kind", [
    ("LSTM", dict(bidirectional=True), "packed"),
    ("LSTM", dict(proj_size=3), "batched"),
    ("GRU", dict(bidirectional=True, num_layers=2), "batched"),
])
def test_backward_twice_with_retained_graph(cell, kwargs, kind):
    """Backward writes its gradients over the saved values only when it releases the graph:
    with ``retain_graph`` they survive for a second backward, which (releasing the graph) may
    overwrite them; both get torch.nn's gradients, and a third finds the graph released."""
    ref, ours = twins(cell, 4, 6, backend="triton", dtype=torch.float32, **kwargs)
    x = torch.randn(5, 3, 4, requires_grad=True)

    def run(module):
        inp = x
        if kind == "packed":
            inp = torch.nn.utils.rnn.pack_padded_sequence(x, [5, 2, 4], enforce_sorted=False)
        out = module(inp)[0]
        return out.data if kind == "packed" else out

    out_ref, out = run(ref), run(ours)
    weight = torch.randn_like(out_ref)
    leaves_ref, leaves = [x, *ref.parameters()], [x, *ours.parameters()]
    want = torch.autograd.grad(out_ref, leaves_ref, weight)
    first = torch.autograd.grad(out, leaves, weight, retain_graph=True)
    second = torch.autograd.grad(out, leaves, weight)
    for a, b, e in zip(first, second, want, strict=True):
        assert_close(a, e, torch.float32)
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        torch.autograd.grad(out, leaves, weight)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_matches_reference(dtype):
    """bf16/fp16 triton against the reference backend (float32 math) on the same weights."""
    ref, ours = twins("LSTM", 4, 8, num_layers=2, backend="triton", dtype=torch.float32)
    expected_mod = fastrnn.LSTM(4, 8, num_layers=2, backend="reference")
    expected_mod.load_state_dict(ours.state_dict())
    ours.to(dtype)
    expected_mod.to(dtype)
    x = torch.randn(5, 3, 4).to(dtype)
    out, (h, c) = ours(x)
    expected, (h_ref, c_ref) = expected_mod(x)
    assert out.dtype == h.dtype == c.dtype == dtype
    for a, e in ((out, expected), (h, h_ref), (c, c_ref)):
        assert_close(a, e, dtype)


@pytest.mark.parametrize("cell,kwargs", [
    ("LSTM", {"bidirectional": True, "proj_size": 2, "num_layers": 2}),
    ("GRU", {"batch_first": True}), ("RNN", {"nonlinearity": "relu", "bias": False})])
def test_double_backward_matches_the_reference(cell, kwargs):
    """With create_graph=True the triton backward differentiates the layer on the reference
    recurrences: second derivatives (a gradient penalty's gradient) of the input, the states
    and every parameter equal the reference backend's, also for packed input."""
    ours = getattr(fastrnn, cell)(3, 5, backend="triton", **kwargs)
    ref = getattr(fastrnn, cell)(3, 5, backend="reference", **kwargs)
    ref.load_state_dict(ours.state_dict())
    x, hx, lengths = make_inputs(ours, T=4, B=3, kind="packed", dtype=torch.float32)
    leaves = [x, *(hx if isinstance(hx, tuple) else (hx,))]
    results = []
    for module in (ours, ref):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, _ = module(packed, hx)
        grads = torch.autograd.grad(out.data.square().sum(), leaves, create_graph=True)
        penalty = sum(g.square().sum() for g in grads)
        results.append(torch.autograd.grad(penalty, [*leaves, *module.parameters()]))
    for a, e in zip(*results, strict=True):
        assert_close(a, e, torch.float32)


def test_gradgradcheck_on_the_reference():
    lstm = fastrnn.LSTM(2, 3, proj_size=2, backend="reference").double()
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 2, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, h, c: lstm(x, (h, c))[0], (x, h0, c0))


@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing(reentrant):
    """Under torch.utils.checkpoint backward recomputes the saved values (then overwrites the
    recomputed ones with its gradients): torch.nn's gradients."""
    ref, ours = twins("LSTM", 3, 5, num_layers=2, bidirectional=True, backend="triton",
                      dtype=torch.float32)
    x = torch.randn(6, 2, 3, requires_grad=True)
    want = torch.autograd.grad(ref(x)[0].sum(), [x, *ref.parameters()])
    out = torch.utils.checkpoint.checkpoint(lambda t: ours(t)[0], x, use_reentrant=reentrant)
    x.grad = None
    out.sum().backward()
    for got, e in zip([x.grad, *(p.grad for p in ours.parameters())], want, strict=True):
        assert_close(got, e, torch.float32)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_autocast_runs_the_recurrence_in_its_dtype(monkeypatch, cell):
    """Under autocast the input projection (inside the fused op) and the recurrence run in
    the autocast dtype, as torch's matmuls would; outputs come back in the dtype torch.nn gives
    (tests/test_autocast.py) and every gradient in its parameter's, close to the float64
    reference's."""
    dtypes = []
    forward = launch.forward

    def spy(cell_code, gx, *args, **kwargs):
        dtypes.append(gx.dtype)
        return forward(cell_code, gx, *args, **kwargs)

    monkeypatch.setattr(launch, "forward", spy)
    ours = getattr(fastrnn, cell)(4, 8, bidirectional=True, backend="triton")
    oracle = getattr(fastrnn, cell)(4, 8, bidirectional=True, backend="reference").double()
    oracle.load_state_dict(ours.state_dict())
    x = torch.randn(5, 3, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ours(x)[0]
    weight = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *ours.parameters()], weight)
    x64 = x.detach().double().requires_grad_()
    out64 = oracle(x64)[0]
    want = torch.autograd.grad(out64, [x64, *oracle.parameters()], weight.double())
    reference = getattr(torch.nn, cell)(4, 8, bidirectional=True)
    try:  # the dtype torch.nn returns (its oneDNN LSTM may not run bfloat16 on this CPU)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = reference(x)[0].dtype
    except RuntimeError:
        expected = torch.bfloat16
    assert dtypes == [torch.bfloat16] and out.dtype == expected
    assert_close(out, out64, torch.bfloat16)
    for g, e, p in zip(grads, want, [x, *ours.parameters()], strict=True):
        assert g.dtype == p.dtype
        assert_close(g, e, torch.bfloat16)


def test_dropout_eval_and_training_with_seed(launches):
    ref, ours = twins("GRU", 3, 5, num_layers=2, dropout=0.5, backend="triton",
                      dtype=torch.float32)
    twin = fastrnn.GRU(3, 5, num_layers=2, dropout=0.5, backend="reference")
    twin.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 3)
    ref.eval()
    ours.eval()
    assert_close(ours(x)[0], ref(x)[0], torch.float32)
    ours.train()
    torch.manual_seed(3)
    out = ours(x)[0]
    torch.manual_seed(3)
    expected = twin(x)[0]
    assert_close(out, expected, torch.float32)
    assert not torch.allclose(out, ref(x)[0])


def test_backward_in_eval_mode_and_inference(launches):
    ref, ours = twins("LSTM", 3, 6, backend="triton", dtype=torch.float32)
    ref.eval()
    ours.eval()
    _compare(ref, ours, T=4, B=2, kind="batched", dtype=torch.float32)
    x = torch.randn(4, 2, 3)
    with torch.inference_mode():
        out, _ = ours(x)
    assert not out.requires_grad
    assert_close(out, ref(x)[0], torch.float32)


def test_long_sequence_tiny_hidden(launches):
    ref, ours = twins("LSTM", 2, 3, backend="triton", dtype=torch.float32)
    _compare(ref, ours, T=200, B=2, kind="batched", dtype=torch.float32)


def test_fallback_warns_once_and_matches():
    backend_state._warned.clear()
    ref, ours = twins("LSTM", 3, 5, backend="triton", dtype=torch.float64)
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match="cannot fuse.*float64"):
        out, _ = ours(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(x)
    assert_close(out, ref(x)[0], torch.float64)


@pytest.mark.parametrize("kind", ["packed", "batched"])
def test_projection_on_the_split_path(monkeypatch, launches, kind):
    """proj_size beyond the resident budget (forced small here) runs fused on the split path."""
    monkeypatch.setattr(common, "RESIDENT_BYTES", 1024)
    assert not common.pick_config(common.LSTM, 80, 3, torch.float32, 7).resident
    ref, ours = twins("LSTM", 5, 80, proj_size=7, num_layers=2, bidirectional=kind == "packed",
                      backend="triton", dtype=torch.float32)
    _compare(ref, ours, T=4, B=3, kind=kind, dtype=torch.float32)
    assert launches == [1 + (kind == "packed")] * 2  # two layers, both directions each


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_double_backward_match_the_reference(name):
    ours = getattr(fastrnn, name)(3, 4, backend="triton")
    ref = getattr(fastrnn, name)(3, 4, backend="reference")
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, requires_grad=True)
    results = []
    for cell in (ours, ref):
        out = cell(x)
        out = out[0] + out[1] if isinstance(out, tuple) else out
        (g,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
        results.append(torch.autograd.grad(g.square().sum(), [x, *cell.parameters()]))
    for a, e in zip(*results, strict=True):
        assert_close(a, e, torch.float32)
