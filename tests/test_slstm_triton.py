"""The fused sLSTM (triton backend, in the interpreter) against the float64 reference: every
launch path (resident; split, one launch per phase and behind the barrier; W_hh on chip;
vector programs), the modules, heads, and second derivatives."""

from __future__ import annotations

import warnings

import pytest
import torch
from fastrnn.kernels import common, launch
from helpers import run_and_grads
from tolerances import assert_close

import fastrnn
from fastrnn import reference
from fastrnn.ops import triton_ops

SPLIT = common.Config(resident=False, block_b=16, block_h=16, block_k=16, num_warps=4)
F64 = torch.float64


def _leaf(*shape, dtype, scale=1.0, positive=False):
    t = torch.randn(*shape, dtype=F64) * scale
    return (t.abs() + 0.5 if positive else t).to(dtype).requires_grad_()


def _check(*, T, B, H, dtype=torch.float32, lengths=None, reverse=False, zero_state=False):
    """Output, the four final states and the gradients of gx, W_hh, h0, c0, n0 and m0 (a
    random weighting of every result) against the float64 reference."""
    gx = _leaf(T, B, 4 * H, dtype=dtype)
    w_hh = _leaf(4 * H, H, dtype=dtype, scale=H**-0.5)
    if zero_state:  # the stabiliser's first-step rule (n == 0)
        states = [torch.zeros(B, H, dtype=dtype, requires_grad=True) for _ in range(4)]
    else:
        states = [_leaf(B, H, dtype=dtype), _leaf(B, H, dtype=dtype),
                  _leaf(B, H, dtype=dtype, positive=True), _leaf(B, H, dtype=dtype)]
    args = [gx, w_hh, *states]
    ref_args = [a.detach().double().requires_grad_() for a in args]
    out = triton_ops.slstm_recurrence(*args, lengths, reverse)
    expected = reference.slstm_recurrence(*ref_args, lengths, reverse)
    weights = [torch.randn(e.shape, dtype=F64) for e in expected]
    sum((o.double() * w).sum() for o, w in zip(out, weights)).backward()
    sum((e * w).sum() for e, w in zip(expected, weights)).backward()
    names = ["y", "h_n", "c_n", "n_n", "m_n"]
    for name, o, e in zip(names, out, expected):
        assert o.dtype == dtype
        assert_close(o, e, dtype, msg=name)
    for name, a, r in zip(["gx", "w_hh", "h0", "c0", "n0", "m0"], args, ref_args):
        assert_close(a.grad, r.grad, dtype, msg=f"grad {name}", scaled=True)


@pytest.fixture(params=["resident", "split"])
def path(request, monkeypatch):
    if request.param == "split":
        monkeypatch.setattr(launch, "pick_config", lambda *args, **kwargs: SPLIT)
    return request.param


@pytest.mark.parametrize("reverse", [False, True])
def test_odd_sizes_and_lengths(path, reverse):
    """H = 37: three 16-wide slices on the split path (a launch per phase)."""
    _check(T=5, B=3, H=37, lengths=torch.tensor([5, 2, 4]), reverse=reverse)


def test_zero_state_first_step_rule(path):
    _check(T=4, B=3, H=13, zero_state=True, lengths=torch.tensor([4, 1, 3]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(path, dtype):
    """States in float32 inside the kernel, the saved values too (common.saved_dtype)."""
    _check(T=4, B=3, H=13, dtype=dtype)


def test_saved_values_are_float32_in_half_precision():
    gx = torch.randn(3, 2, 4 * 8, dtype=torch.bfloat16)
    w = torch.randn(1, 4 * 8, 8, dtype=torch.bfloat16)
    states = torch.zeros(1, 3, 2, 8, dtype=torch.bfloat16)
    y, h_n, c_n, ws = launch.forward(common.SLSTM, gx, w, states[:, 0], states, save=True)
    assert ws.dtype == torch.float32 and ws.shape == (3, 2, 7 * 8)
    assert y.dtype == h_n.dtype == c_n.dtype == torch.bfloat16 and c_n.shape == (1, 3, 2, 8)


def _spy(monkeypatch) -> list:
    """No resident budget; the split launches made, as (grid, barrier, W_ON_CHIP, VECTOR)."""
    monkeypatch.setattr(common, "RESIDENT_BYTES", 0)
    launches = []
    run_phases = launch._run_phases

    def spy(kernel, grid, args, meta, phases, barrier):
        launches.append((grid, barrier, meta["W_ON_CHIP"], meta.get("VECTOR", False)))
        run_phases(kernel, grid, args, meta, phases, barrier)

    monkeypatch.setattr(launch, "_run_phases", spy)
    return launches


def test_w_on_chip_one_program_behind_the_barrier(monkeypatch):
    launches = _spy(monkeypatch)
    _check(T=5, B=3, H=13, lengths=torch.tensor([5, 1, 3]), reverse=True)
    assert launches == [((1, 1, 1), True, True, False)] * 2  # forward, backward


def test_vector_forward(monkeypatch):
    launches = _spy(monkeypatch)
    _check(T=4, B=1, H=21)
    assert launches == [((1, 3, 1), False, True, True), ((1, 2, 1), False, True, False)]


def _twins(**kwargs):
    torch.manual_seed(0)
    ref = fastrnn.SLSTM(5, 8, backend="reference", **kwargs).double()
    ours = fastrnn.SLSTM(5, 8, backend="triton", **kwargs)
    ours.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    return ref, ours


@pytest.mark.parametrize("config", [
    {"num_layers": 2, "bidirectional": True},
    {"num_heads": 2, "bidirectional": True},
    {"num_heads": 4, "batch_first": True},
])
def test_module_matches_the_reference(config):
    """Outputs, the four final states and every gradient (input, hx, parameters); packed
    unsorted lengths where not batch_first."""
    ref, ours = _twins(**config)
    rows = ref.num_layers * (2 if ref.bidirectional else 1)
    T, B = 4, 3
    x = torch.randn((B, T, 5) if ref.batch_first else (T, B, 5), dtype=F64)
    hx = (torch.randn(rows, B, 8, dtype=F64), torch.randn(rows, B, 8, dtype=F64),
          torch.rand(rows, B, 8, dtype=F64) + 0.5, torch.randn(rows, B, 8, dtype=F64))
    lengths = None if ref.batch_first else torch.tensor([2, 4, 3])

    def run(module, dtype):
        leaves = x.to(dtype).requires_grad_(), tuple(h.to(dtype).requires_grad_() for h in hx)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to the reference
            return run_and_grads(module, *leaves, lengths)

    got, want = run(ours, torch.float32), run(ref, F64)
    assert got.keys() == want.keys() and len(got) == 2 + 4 + 4 + len(list(ref.parameters()))
    for name in want:
        assert_close(got[name], want[name], torch.float32, msg=name, scaled=True)


def test_cell_matches_the_reference():
    torch.manual_seed(1)
    ref = fastrnn.SLSTMCell(3, 6, backend="reference").double()
    ours = fastrnn.SLSTMCell(3, 6, backend="triton")
    ours.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    x = torch.randn(2, 3, dtype=F64)
    got, want = ours(x.float()), ref(x)
    for a, b in zip(got, want):
        assert_close(a, b, torch.float32)


def test_double_backward_matches_the_reference():
    """create_graph=True through the fused op: second derivatives as the reference's."""
    ref, ours = _twins(num_heads=2)
    x = torch.randn(3, 2, 5, dtype=F64)
    results = []
    for module, dtype in ((ours, torch.float32), (ref, F64)):
        inp = x.to(dtype).requires_grad_()
        out, state = module(inp)
        (g,) = torch.autograd.grad((out**2).sum() + state[1].sum(), inp, create_graph=True)
        (gg,) = torch.autograd.grad((g**2).sum(), module.weight_hh_l0)
        results.append((g, gg))
    for a, b in zip(*results):
        assert_close(a, b, torch.float32, scaled=True)


def test_auto_runs_the_reference_off_cuda():
    """torch.nn has no sLSTM: ``auto`` off CUDA computes on the reference, silently."""
    ref, _ = _twins()
    auto = fastrnn.SLSTM(5, 8, backend="auto").double()
    auto.load_state_dict(ref.state_dict())
    x = torch.randn(3, 2, 5, dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = auto(x)
    assert torch.equal(got[0], ref(x)[0])


def test_compiles_into_one_graph(monkeypatch):
    """torch.compile(fullgraph=True) traces the fused op (its fake saves float32 values in a
    bfloat16 run, as the kernel does): outputs and gradients as eager's, the kernels ran."""
    torch._dynamo.reset()
    calls = []
    forward = launch.forward
    monkeypatch.setattr(launch, "forward", lambda *a, **kw: calls.append(1) or forward(*a, **kw))
    _, ours = _twins(num_heads=2, bidirectional=True)
    ours = ours.to(torch.bfloat16)
    x = torch.randn(3, 2, 5, dtype=torch.bfloat16)
    try:
        got = run_and_grads(torch.compile(ours, fullgraph=True, backend="aot_eager"),
                            x.clone().requires_grad_(), None)
    finally:
        torch._dynamo.reset()
    want = run_and_grads(ours, x.clone().requires_grad_(), None)
    got = {name.replace("_orig_mod.", ""): value for name, value in got.items()}
    assert calls and got.keys() == want.keys()
    for name, value in want.items():
        assert_close(got[name], value, torch.bfloat16, msg=name)
