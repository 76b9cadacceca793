"""CPU microbenchmarks of the reference recurrences (pytest-benchmark).

Not part of the default test run: ``pytest benchmarks/ --benchmark-only``.
"""

from __future__ import annotations

import pytest
import torch

import benchmarks  # noqa: F401 - puts a checkout's src/ on the path when fastrnn is not installed
from fastrnn.reference import gru_recurrence, lstm_recurrence, rnn_recurrence

SHAPES = [(100, 32, 128), (50, 8, 64)]  # (T, B, H)
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _args(cell: str, T: int, B: int, H: int, packed: bool) -> tuple[tuple, dict]:
    g = torch.Generator().manual_seed(0)
    gx = torch.randn(T, B, GATES[cell] * H, generator=g)
    w_hh = torch.randn(GATES[cell] * H, H, generator=g) / H**0.5
    h0 = torch.randn(B, H, generator=g)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g) if packed else None
    if cell == "lstm":
        return (gx, w_hh, h0, torch.randn(B, H, generator=g)), {"lengths": lengths}
    if cell == "gru":
        return (gx, w_hh, torch.randn(H, generator=g), h0), {"lengths": lengths}
    return (gx, w_hh, h0), {"lengths": lengths}


FUNCTIONS = {"lstm": lstm_recurrence, "gru": gru_recurrence, "rnn": rnn_recurrence}


@pytest.mark.parametrize("cell", sorted(FUNCTIONS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}-B{}-H{}".format(*s))
@pytest.mark.parametrize("packed", [False, True], ids=["dense", "lengths"])
def test_reference_forward(benchmark, cell: str, shape: tuple[int, int, int], packed: bool):
    args, kwargs = _args(cell, *shape, packed)
    with torch.no_grad():
        y = benchmark(FUNCTIONS[cell], *args, **kwargs)[0]
    assert y.shape == (shape[0], shape[1], shape[2]) and torch.isfinite(y).all()


@pytest.mark.parametrize("cell", sorted(FUNCTIONS))
def test_reference_forward_backward(benchmark, cell: str):
    args, kwargs = _args(cell, *SHAPES[0], packed=False)
    leaves = [a.requires_grad_() for a in args[:2]]  # gx and w_hh
    grad = torch.randn(SHAPES[0][0], SHAPES[0][1], SHAPES[0][2])

    def step() -> list[torch.Tensor]:
        y = FUNCTIONS[cell](*args, **kwargs)[0]
        return list(torch.autograd.grad(y, leaves, grad))

    dgx, dw = benchmark(step)
    assert dgx.shape == args[0].shape and dw.shape == args[1].shape
