"""Elman RNN math (``h' = act(gx + h W_hh^T)``, act tanh or relu) for the recurrence kernels."""

import triton
import triton.language as tl
from fastrnn.kernels.common import load_tile, tanh


@triton.jit
def forward(x_ptr, x_off, cols, H, mask, a0, hprev, c, RELU: tl.constexpr):
    """One step: returns (h', c unchanged); the output y is the saved activation."""
    pre = load_tile(x_ptr, x_off, cols, mask) + a0
    if RELU:
        h = tl.maximum(pre, 0.0)
    else:
        h = tanh(pre)
    return h, c


@triton.jit
def backward(dh, h, RELU: tl.constexpr):
    """Pre-activation gradient from dh' and the step's output h'."""
    if RELU:
        return tl.where(h > 0.0, dh, 0.0)
    return dh * (1.0 - h * h)
