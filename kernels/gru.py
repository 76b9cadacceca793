"""GRU gate math (torch gate order r, z, n) for the recurrence kernels."""

import triton
import triton.language as tl  # noqa: F401  (TRITON_INTERPRET needs it visible in jit modules)
from fastrnn.kernels.common import load_tile, sigmoid, tanh


@triton.jit
def forward(x_ptr, x_off, cols, H, mask, a0, a1, a2, a3, hprev, c, bhn):
    """One step: ``n = tanh(gx_n + r * (h W_hn^T + b_hn))``, ``h' = (1 - z) n + z h``.

    Returns (h', c unchanged, saved: the pre-activations of r, z and n, a placeholder in the
    fourth gate's slot, and h W_hn^T + b_hn, the extra block); backward recomputes the
    activations (see the LSTM's note on precision).
    """
    zr = load_tile(x_ptr, x_off, cols, mask) + a0
    zz = load_tile(x_ptr + H, x_off, cols, mask) + a1
    hn = a2 + bhn[None, :]
    zn = load_tile(x_ptr + 2 * H, x_off, cols, mask) + sigmoid(zr) * hn
    z = sigmoid(zz)
    return (1.0 - z) * tanh(zn) + z * hprev, c, zr, zz, zn, zn, hn


@triton.jit
def backward(dh, dc, zr, zz, zn, unused, hn, hprev):
    """Gradients of one step from dh' and the saved pre-activations, hn and the previous h.

    Returns (dgates r, z, n; recurrent gradients r, z, r * dn; dh through z; dc unchanged).
    """
    r, z, n = sigmoid(zr), sigmoid(zz), tanh(zn)
    dn = dh * (1.0 - z) * (1.0 - n * n)
    dr = dn * hn * r * (1.0 - r)
    dz = dh * (hprev - n) * z * (1.0 - z)
    return dr, dz, dn, dn, dr, dz, dn * r, dn, dh * z, dc
