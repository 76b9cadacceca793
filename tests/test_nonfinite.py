"""Non-finite and extreme values on the triton backend, in the interpreter, against torch.nn.

Every value torch accepts (±inf, NaN, the largest finite float) in ``h0``, ``c0``, the input or
the output gradient gives what torch.nn gives, in every element (NaN where torch has NaN), in
every kernel variant the dispatcher can pick: resident, split with the grid barrier (a grid of
one program, running every tile) or a launch per step (W_hh on chip in two slices), vector
programs, and with a projection;
at hidden sizes on the padding boundary (16) and off it (17; 7 bidirectional). The kernels'
padded lanes hold zero weights, and ``inf * 0`` is NaN: those lanes must never reach a real
one.
"""

from __future__ import annotations

import pytest
import torch
from fastrnn.kernels import common, launch
from tolerances import assert_close

import fastrnn

SPLIT = common.Config(resident=False, block_b=16, block_h=16, block_k=16, num_warps=4)
MAX = torch.finfo(torch.float32).max
# (tensor, index, value): one element of h0 / c0 / the input / the output gradient set to value
CASES = [("h0", (0, 1, 2), float("inf")), ("h0", (0, 1, 0), float("nan")),
         ("h0", (0, 0, 3), MAX), ("h0", (0, 2, 1), -float("inf")),
         ("x", (1, 1, 0), float("inf")), ("dy", (2, 1, 1), float("inf")),
         ("c0", (0, 1, 2), float("inf"))]
MODULES = {"LSTM": ("LSTM", {}), "LSTM_PROJ": ("LSTM", {"proj_size": 3}),
           "GRU": ("GRU", {}), "RNN_TANH": ("RNN", {}),
           "RNN_RELU": ("RNN", {"nonlinearity": "relu"})}


@pytest.fixture(params=["resident", "split", "on_chip", "vector"])
def variant(request, monkeypatch):
    """The kernels a call runs: resident (what these sizes pick), a forced split config,
    no resident budget (W_hh slices on chip), no resident budget at batch 1 (vector programs
    in the forward)."""
    if request.param == "split":
        monkeypatch.setattr(launch, "pick_config", lambda *args, **kwargs: SPLIT)
    if request.param in ("on_chip", "vector"):
        monkeypatch.setattr(common, "RESIDENT_BYTES", 0)
    return request.param


def _run(module, x, h0, c0, dy):
    """Outputs, final states and the gradients of input, states and every parameter."""
    out, state = module(x, h0 if c0 is None else (h0, c0))
    states = state if isinstance(state, tuple) else (state,)
    leaves = [x, h0] + ([] if c0 is None else [c0]) + list(module.parameters())
    grads = torch.autograd.grad((out, *states), leaves, (dy, *(torch.ones_like(s) for s in states)))
    return [out, *states, *grads]


def _assert_same(actual, expected, msg: str, exact: bool) -> None:
    """Finite where torch's is finite (and close), non-finite where torch's is. Outputs and
    states match exactly there (inf for inf, NaN for NaN); a gradient's inf may stand where
    torch has NaN, since ``inf - inf`` depends on how a formula is written (torch's GRU
    ``dz = dh h - dh n`` is NaN where ``dh (h - n)`` is inf)."""
    if exact:
        assert_close(actual, expected, torch.float32, msg=msg, equal_nan=True)
        return
    finite = expected.isfinite()
    assert torch.equal(actual.isfinite(), finite), f"{msg}: non-finite elsewhere than torch's"
    assert_close(actual[finite], expected[finite], torch.float32, msg=msg)


def _compare(name: str, H: int, B: int, case: tuple, **extra) -> None:
    cell, kwargs = MODULES[name]
    kwargs = kwargs | extra
    ref = getattr(torch.nn, cell)(3, H, **kwargs)
    ours = getattr(fastrnn, cell)(3, H, backend="triton", **kwargs)
    ours.load_state_dict(ref.state_dict())
    T, P = 4, kwargs.get("proj_size") or H
    x = torch.randn(T, B, 3)
    h0 = torch.randn(1, B, P)
    c0 = torch.randn(1, B, H) if cell == "LSTM" else None
    dy = torch.randn(T, B, P)
    where, index, value = case
    tensors = {"x": x, "h0": h0, "c0": c0, "dy": dy}
    if tensors[where] is None:
        pytest.skip(f"{name} has no {where}")
    index = tuple(min(i, s - 1) for i, s in zip(index, tensors[where].shape))
    tensors[where][index] = value
    for t in (x, h0, c0):
        if t is not None:
            t.requires_grad_(True)
    expected = _run(ref, x, h0, c0, dy)
    actual = _run(ours, x, h0, c0, dy)
    labels = ["output", "h_n", "c_n"][: 2 + (cell == "LSTM")] + ["grad x", "grad h0"] + (
        ["grad c0"] if c0 is not None else []) + [f"grad {n}" for n, _ in ref.named_parameters()]
    for label, a, e in zip(labels, actual, expected):
        _assert_same(a, e, f"{where}={value}: {label}", exact=not label.startswith("grad"))
    if value == value:  # some output is still a number: a real check
        assert not expected[0].isnan().all()


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
@pytest.mark.parametrize("H", [16, 17])
def test_nonfinite_values_as_torch_nn(variant, name, H):
    """Batch 3 (1 for vector programs); H = 16 on the split config is one tile, so all steps
    run behind the grid barrier; H = 17 is two slices, which one program runs in turn behind
    the barrier when W_hh is streamed, and two programs a launch per step when it is on chip."""
    B = 1 if variant == "vector" else 3
    for case in CASES:
        if case[0] == "c0" and name != "LSTM":
            continue
        _compare(name, H, B, case)


@pytest.mark.parametrize("variant_", ["resident", "split"])
def test_nonfinite_values_with_projection(monkeypatch, variant_):
    """The projection's two products: m's padded lanes and h's."""
    if variant_ == "split":
        monkeypatch.setattr(launch, "pick_config", lambda *args, **kwargs: SPLIT)
    for case in CASES:
        _compare("LSTM_PROJ", 17, 3, case)


def test_nonfinite_values_bidirectional():
    """Both directions in one launch, padded lanes in each."""
    for case in CASES[:3] + CASES[5:6]:
        cell, kwargs = MODULES["GRU"]
        ref = torch.nn.GRU(3, 7, bidirectional=True)
        ours = fastrnn.GRU(3, 7, bidirectional=True, backend="triton")
        ours.load_state_dict(ref.state_dict())
        x, h0, dy = torch.randn(4, 3, 3), torch.randn(2, 3, 7), torch.randn(4, 3, 14)
        tensors = {"x": x, "h0": h0, "dy": dy}
        tensors[case[0]][case[1]] = case[2]
        x.requires_grad_(True)
        h0.requires_grad_(True)
        for a, e in zip(_run(ours, x, h0, None, dy), _run(ref, x, h0, None, dy)):
            assert_close(a, e, torch.float32, msg=str(case), equal_nan=True)
