"""LSTM gate math (torch gate order i, f, g, o) for the recurrence kernels."""

import triton
import triton.language as tl
from fastrnn.kernels.common import load_tile, sigmoid, tanh


@triton.jit
def forward(x_ptr, x_off, cols, H, mask, a0, a1, a2, a3, hprev, c, bhn):
    """One step on a [rows, hidden] tile: pre-activations ``gx + h W^T`` -> (m, c, saved...).

    m = o * tanh(c) is the new hidden state before any projection. Saved: i, f, g, o, c.
    """
    i = sigmoid(load_tile(x_ptr, x_off, cols, mask) + a0)
    f = sigmoid(load_tile(x_ptr + H, x_off, cols, mask) + a1)
    g = tanh(load_tile(x_ptr + 2 * H, x_off, cols, mask) + a2)
    o = sigmoid(load_tile(x_ptr + 3 * H, x_off, cols, mask) + a3)
    c = f * c + i * g
    return o * tanh(c), c, i, f, g, o, c


@triton.jit
def backward(dm, dc, i, f, g, o, c, cprev):
    """Gradients of one step from dm (w.r.t. o * tanh(c)) and dc, given the saved activations.

    Returns (dgates i, f, g, o; recurrent gradients i, f, g, o; dh not through W_hh; dc_prev).
    """
    tc = tanh(c)
    dc = dc + dm * o * (1.0 - tc * tc)
    di = dc * g * i * (1.0 - i)
    df = dc * cprev * f * (1.0 - f)
    dg = dc * i * (1.0 - g * g)
    do = dm * tc * o * (1.0 - o)
    return di, df, dg, do, di, df, dg, do, tl.zeros_like(dm), dc * f
