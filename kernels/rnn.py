"""Elman RNN math (``h' = act(gx + h W_hh^T)``, act tanh or relu) for the recurrence kernels."""

import triton
import triton.language as tl
from fastrnn.kernels.common import load_tile, tanh


@triton.jit
def forward(x_ptr, x_off, cols, H, mask, a0, hprev, c, relu):
    """One step: returns (h', c unchanged); the output y is the saved activation. ``relu`` is a
    runtime flag (relu, else tanh), so both nonlinearities share one compiled kernel."""
    pre = load_tile(x_ptr, x_off, cols, mask) + a0
    h = tl.where(relu != 0, tl.where(pre < 0.0, 0.0, pre), tanh(pre))  # relu(NaN) is NaN
    return h, c


@triton.jit
def backward(dh, h, relu):
    """Pre-activation gradient from dh' and the step's output h'."""
    # relu passes the gradient wherever h <= 0 does not hold, NaN included (as torch's)
    return tl.where(relu != 0, tl.where(h <= 0.0, 0.0, dh), dh * (1.0 - h * h))
