"""Zoneout in the fused kernels (interpreter) against the float64 reference.

Kernel level: the triton recurrences take the reference's keep tensors (per-step masks, or the
constant of evaluation) on every launch path the dispatcher picks: resident, split (a launch
per phase), W_hh on chip behind the grid barrier (a grid of one program), vector programs at
batch 1, and both directions in one launch; outputs, final states and every gradient. Module
level: a seed draws the same masks on every backend and dtype, so a float32 triton run equals
the float64 reference run; the backends each configuration takes.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from fastrnn.kernels import common, launch
from helpers import check_directions, make_inputs, run_and_grads
from tolerances import assert_close

import fastrnn
from fastrnn import reference
from fastrnn.ops import backend as backend_state
from fastrnn.ops import triton_ops

SPLIT = common.Config(resident=False, block_b=16, block_h=16, block_k=16, num_warps=4)
CELLS = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]
P_KEEP = (0.4, 0.6)  # zoneout of h and of the LSTM's c


@pytest.fixture(params=["resident", "split", "barrier"])
def path(request, monkeypatch):
    """The resident config small sizes pick; a forced split config (a launch per phase); no
    resident budget, so that pick_config's split config with W_hh on chip runs as one program
    behind the grid barrier. Yields the split launches as (grid, barrier, W_ON_CHIP)."""
    launches = []
    if request.param == "split":
        monkeypatch.setattr(launch, "pick_config", lambda *args, **kwargs: SPLIT)
    if request.param == "barrier":
        monkeypatch.setattr(common, "RESIDENT_BYTES", 0)
        run_phases = launch._run_phases

        def spy(kernel, grid, args, meta, phases, barrier):
            launches.append((grid, barrier, meta["W_ON_CHIP"], meta.get("VECTOR", False)))
            run_phases(kernel, grid, args, meta, phases, barrier)

        monkeypatch.setattr(launch, "_run_phases", spy)
    return request.param, launches


def _keeps(cell: str, kind: str, T: int, B: int, width: int) -> list[torch.Tensor]:
    """Keep tensors of h (and c): Bernoulli masks (T, B, width), or evaluation's constants."""
    probs = P_KEEP[: 2 if cell == "LSTM" else 1]
    if kind == "masks":
        return [torch.bernoulli(torch.full((T, B, width), p)).double() for p in probs]
    return [torch.full((1, 1, 1), p, dtype=torch.float64) for p in probs]


def _leaves(cell: str, T: int, B: int, H: int, dtype) -> dict:
    G = {"LSTM": 4, "GRU": 3}.get(cell, 1)

    def leaf(*shape, s=1.0):
        return (torch.randn(*shape, dtype=torch.float64) * s).to(dtype).requires_grad_()

    args = {"gx": leaf(T, B, G * H), "w_hh": leaf(G * H, H, s=H**-0.5), "h0": leaf(B, H)}
    if cell == "LSTM":
        args["c0"] = leaf(B, H)
    if cell == "GRU":
        args["b_hn"] = leaf(H)
    return args


def _call(impl, cell: str, a: dict, lengths, reverse: bool, keeps):
    if cell == "LSTM":
        return impl.lstm_recurrence(a["gx"], a["w_hh"], a["h0"], a["c0"], None, lengths,
                                    reverse, zoneout=keeps)
    if cell == "GRU":
        return impl.gru_recurrence(a["gx"], a["w_hh"], a["b_hn"], a["h0"], lengths, reverse,
                                   zoneout=keeps)
    return impl.rnn_recurrence(a["gx"], a["w_hh"], a["h0"], cell[4:].lower(), lengths,
                               reverse, zoneout=keeps)


def _check(cell: str, kind: str, *, T: int, B: int, H: int, lengths=None,
           reverse: bool = False, dtype=torch.float32) -> None:
    """Outputs, final states and the gradients of every input equal the float64 reference's
    for the same keep tensors."""
    args = _leaves(cell, T, B, H, dtype)
    ref_args = {k: v.detach().double().requires_grad_() for k, v in args.items()}
    keeps = _keeps(cell, kind, T, B, H)
    out = _call(triton_ops, cell, args, lengths, reverse, keeps)
    expected = _call(reference, cell, ref_args, lengths, reverse, keeps)
    weights = [torch.randn(e.shape, dtype=torch.float64) for e in expected]
    sum((o.double() * w).sum() for o, w in zip(out, weights)).backward()
    sum((e * w).sum() for e, w in zip(expected, weights)).backward()
    for i, (o, e) in enumerate(zip(out, expected)):
        assert_close(o, e, dtype, msg=f"output {i}")
    for name, leaf in args.items():
        assert_close(leaf.grad, ref_args[name].grad, dtype, msg=f"grad {name}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["masks", "expectation"])
def test_every_launch_path(path, cell, kind):
    name, launches = path
    reverse = kind == "masks"
    _check(cell, kind, T=6, B=3, H=13, lengths=torch.tensor([6, 2, 5]), reverse=reverse)
    if name == "barrier":  # forward and backward: one program, all steps behind the barrier
        assert [(grid, barrier, chip) for grid, barrier, chip, _ in launches] == [
            ((1, 1, 1), True, True)] * 2


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
def test_vector_programs(monkeypatch, cell):
    """Batch 1 without a resident budget: the forward's vector programs."""
    monkeypatch.setattr(common, "RESIDENT_BYTES", 0)
    assert common.pick_config(common.CELLS[cell], 13, 1, torch.float32).vector
    _check(cell, "masks", T=5, B=1, H=13)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    _check("LSTM", "masks", T=5, B=3, H=24, lengths=torch.tensor([5, 2, 4]), dtype=dtype)


@pytest.mark.parametrize("cell", ["LSTM", "RNN_TANH"])
def test_both_directions_in_one_launch(cell):
    """``layer`` with D = 2 and the directions' masks side by side (T, B, 2H)."""
    T, B, H = 5, 3, 7
    lengths = torch.tensor([5, 2, 4])
    dirs = [_leaves(cell, T, B, H, torch.float32) for _ in range(2)]
    refs = [{k: v.detach().double().requires_grad_() for k, v in d.items()} for d in dirs]
    keeps = [_keeps(cell, "masks", T, B, H) for _ in range(2)]
    state = [torch.stack([d["h0"] for d in dirs])]
    if cell == "LSTM":
        state.append(torch.stack([d["c0"] for d in dirs]))
    y, finals = triton_ops.layer(
        cell, torch.cat([d["gx"] for d in dirs], dim=2), torch.stack([d["w_hh"] for d in dirs]),
        state, lengths=lengths, zoneout=[torch.cat(k, dim=2) for k in zip(*keeps)])
    expected = [_call(reference, cell, r, lengths, d == 1, keeps[d]) for d, r in enumerate(refs)]
    out = [y, *finals]
    check_directions(out, expected, dirs, refs)


def test_kept_elements_repeat_exactly():
    """Where the mask keeps an element, the fused h is the previous step's bit for bit."""
    args = _leaves("GRU", 8, 3, 13, torch.float32)
    keeps = _keeps("GRU", "masks", 8, 3, 13)
    with torch.no_grad():
        y, _ = _call(triton_ops, "GRU", args, None, False, keeps)
    kept = keeps[0][1:].bool()
    assert kept.any() and (~kept).any()
    assert torch.equal(y[1:][kept], y[:-1][kept])
    assert not torch.equal(y[1:][~kept], y[:-1][~kept])


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("training", [True, False])
def test_modules_match_the_reference_for_a_seed(name, training):
    """A 2-layer bidirectional module on packed unsorted input: the triton backend (float32)
    and the float64 reference draw the same masks for one seed, so outputs, final states and
    every gradient agree."""
    kwargs = dict(num_layers=2, bidirectional=True, zoneout=0.3 if name != "LSTM" else (0.3, 0.5))
    ours = getattr(fastrnn, name)(3, 6, backend="triton", **kwargs).train(training)
    ref = getattr(fastrnn, name)(3, 6, backend="reference", **kwargs).double().train(training)
    ref.load_state_dict(ours.state_dict())
    x, hx, lengths = make_inputs(ours, T=5, B=4, kind="packed", dtype=torch.float32)
    ref_hx = tuple(h.detach().double().requires_grad_() for h in
                   (hx if isinstance(hx, tuple) else (hx,)))
    ref_x = x.detach().double().requires_grad_()
    torch.manual_seed(5)
    actual = run_and_grads(ours, x, hx, lengths)
    torch.manual_seed(5)
    expected = run_and_grads(ref, ref_x, ref_hx if name == "LSTM" else ref_hx[0], lengths)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert_close(actual[key], value, torch.float32, msg=key)


def test_backends_of_zoneout():
    """auto takes the fused kernels where they serve the call (the reference on this CPU),
    triton fuses zoneout (also with heads, as the dense matrix), a projection falls back to the
    reference with a warning, native raises as before."""
    backend_state._warned.clear()
    x = torch.randn(4, 2, 3)
    assert fastrnn.GRU(3, 4, zoneout=0.1)._backend_for(x, None) == "reference"  # CPU
    assert fastrnn.GRU(3, 4, zoneout=0.1, backend="triton")._backend_for(x, None) == "triton"
    heads = fastrnn.LSTM(3, 4, zoneout=0.2, num_heads=2, backend="triton").eval()
    ref = fastrnn.LSTM(3, 4, zoneout=0.2, num_heads=2, backend="reference").eval()
    ref.load_state_dict(heads.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback
        out = heads(x)[0]
    assert_close(out, ref(x)[0], torch.float32)
    proj = fastrnn.LSTM(3, 4, proj_size=2, zoneout=0.1, backend="triton")
    with pytest.warns(UserWarning, match=r"cannot fuse this LSTM \(zoneout with proj_size\)"):
        assert proj._backend_for(x, None) == "reference"
    with pytest.raises(ValueError, match="zoneout is not part of torch.nn"):
        fastrnn.GRU(3, 4, zoneout=0.1, backend="native")(x)


def test_double_backward():
    """With create_graph=True the triton backward differentiates the reference recurrences
    with the forward's masks: second derivatives equal the float64 reference's."""
    lstm = fastrnn.LSTM(3, 5, zoneout=(0.4, 0.3), backend="triton")
    ref = fastrnn.LSTM(3, 5, zoneout=(0.4, 0.3), backend="reference").double()
    ref.load_state_dict(lstm.state_dict())
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    results = []
    for module, inp in ((lstm, x.float().requires_grad_()), (ref, x.clone().requires_grad_())):
        torch.manual_seed(3)
        out, _ = module(inp)
        (g,) = torch.autograd.grad(out.square().sum(), inp, create_graph=True)
        params = list(module.parameters())
        results.append((g, *torch.autograd.grad(g.square().sum(), [inp, *params])))
    for i, (a, e) in enumerate(zip(*results, strict=True)):
        assert_close(a, e, torch.float32, msg=f"result {i}")
