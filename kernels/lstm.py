"""LSTM gate math (torch gate order i, f, g, o) for the recurrence kernels."""

import triton
import triton.language as tl
from fastrnn.kernels.common import load_tile, sigmoid, tanh


@triton.jit
def forward(x_ptr, x_off, cols, H, mask, a0, a1, a2, a3, hprev, c, bhn):
    """One step on a [rows, hidden] tile: pre-activations ``gx + h W^T`` -> (m, c, saved...).

    m = o * tanh(c) is the new hidden state before any projection. Saved: the four gates'
    pre-activations and c. In half precision the activations themselves would lose the
    derivative of a saturated gate (1 - s rounds to a multiple of 2**-8 near s = 1); backward
    recomputes them from the pre-activations instead.
    """
    zi = load_tile(x_ptr, x_off, cols, mask) + a0
    zf = load_tile(x_ptr + H, x_off, cols, mask) + a1
    zg = load_tile(x_ptr + 2 * H, x_off, cols, mask) + a2
    zo = load_tile(x_ptr + 3 * H, x_off, cols, mask) + a3
    c = sigmoid(zf) * c + sigmoid(zi) * tanh(zg)
    return sigmoid(zo) * tanh(c), c, zi, zf, zg, zo, c


@triton.jit
def backward(dm, dc, zi, zf, zg, zo, c, cprev):
    """Gradients of one step from dm (w.r.t. o * tanh(c)) and dc, given the saved
    pre-activations and the previous c (the step's c is ``f * c_prev + i * g`` again, as the
    forward computed it: the saved c is the state, which zoneout may have mixed; ``c`` is
    unused).

    Returns (dgates i, f, g, o; recurrent gradients i, f, g, o; dh not through W_hh; dc_prev).
    """
    i, f, g, o = sigmoid(zi), sigmoid(zf), tanh(zg), sigmoid(zo)
    tc = tanh(f * cprev + i * g)
    dc = dc + dm * o * (1.0 - tc * tc)
    di = dc * g * i * (1.0 - i)
    df = dc * cprev * f * (1.0 - f)
    dg = dc * i * (1.0 - g * g)
    do = dm * tc * o * (1.0 - o)
    return di, df, dg, do, di, df, dg, do, tl.zeros_like(dm), dc * f
