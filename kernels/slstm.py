"""sLSTM gate math (xLSTM; gate order i, f, z, o) for the recurrence kernels.

States besides h: the cell c, the normaliser n and the stabiliser m of the exponential input
gate (``fastrnn.reference.slstm_recurrence`` has the equations). Saved per step: the four
pre-activations and the new c, n and m (in float32: ``common.saved_dtype``).
"""

import triton
import triton.language as tl
from fastrnn.kernels.common import load_tile, log_sigmoid, sigmoid, tanh


@triton.jit
def forward(x_ptr, x_off, cols, H, mask, a0, a1, a2, a3, c, n, m):
    """One step on a [rows, hidden] tile from the pre-activations ``gx + h W^T``:
    ``m' = i~ where n == 0 else max(log sigmoid(f~) + m, i~)``, ``i = exp(i~ - m')``,
    ``f = exp(log sigmoid(f~) + m - m')``, ``c' = f c + i tanh(z~)``, ``n' = f n + i``,
    ``h' = sigmoid(o~) c' / n'``. Returns (h', c', n', m', the four pre-activations)."""
    zi = load_tile(x_ptr, x_off, cols, mask) + a0
    zf = load_tile(x_ptr + H, x_off, cols, mask) + a1
    zz = load_tile(x_ptr + 2 * H, x_off, cols, mask) + a2
    zo = load_tile(x_ptr + 3 * H, x_off, cols, mask) + a3
    lf = log_sigmoid(zf) + m
    m_new = tl.where(n == 0.0, zi, tl.maximum(lf, zi, propagate_nan=tl.PropagateNan.ALL))
    ig = tl.exp(zi - m_new)
    fg = tl.exp(lf - m_new)
    c = fg * c + ig * tanh(zz)
    n = fg * n + ig
    return sigmoid(zo) * c / n, c, n, m_new, zi, zf, zz, zo


@triton.jit
def backward(dh, dc, dn, dm, zi, zf, zz, zo, c, n, cprev, nprev, mprev):
    """Gradients of one step from those of h', c', n' and m' (``dh .. dm``), the saved
    pre-activations, c' and n', and the previous c, n and m (m' recomputed from them).

    Returns (dgates i, f, z, o; dc_prev, dn_prev, dm_prev). The stabiliser's branch takes the
    gradient of m' as torch differentiates ``where`` and ``maximum`` (halves at a tie).
    """
    lf = log_sigmoid(zf) + mprev
    first = nprev == 0.0
    m_new = tl.where(first, zi, tl.maximum(lf, zi, propagate_nan=tl.PropagateNan.ALL))
    ig = tl.exp(zi - m_new)
    fg = tl.exp(lf - m_new)
    so, tz = sigmoid(zo), tanh(zz)
    # n' > 0 wherever a step ran (n' >= i > 0 on a first step); the zeros of masked lanes and
    # rows must give zero gradients (they reach every column of the product with W_hh)
    n = tl.where(n == 0.0, 1.0, n)
    q = c / n  # h' = so * q
    do = dh * q * so * (1.0 - so)
    dc = dc + dh * so / n
    dn = dn - dh * so * q / n
    dfg = (dc * cprev + dn * nprev) * fg  # through f = exp(lf - m')
    dig = (dc * tz + dn) * ig  # through i = exp(i~ - m')
    dz = dc * ig * (1.0 - tz * tz)
    dmn = dm - dfg - dig  # the gradient of m', routed to i~ or lf
    to_i = tl.where(first | (zi > lf), 1.0, tl.where(zi == lf, 0.5, 0.0))
    dlf = dfg + dmn * (1.0 - to_i)
    di = dig + dmn * to_i
    df = dlf * sigmoid(-zf)  # d log sigmoid(x) / dx = 1 - sigmoid(x), without cancelling
    return di, df, dz, do, dc * fg, dn * fg, dlf
