"""The LayerNorm LSTM and GRU time loop (inference): the recurrent projection ``h W_hh^T``
layer-normalised every step, and the LSTM's cell state too (``fastrnn.reference``'s
``RecurrentNorm`` has the formulas).

Programs own ``BLOCK_H`` hidden units (of every gate) of a batch tile, as on the split path of
:mod:`fastrnn.kernels.split`, so a norm's statistics over the whole width are a reduction
across programs: each program writes the mean and the sum of squared deviations of its slice
(per row, per gate with ``per_gate``) to ``sbuf``, and after a grid-wide synchronisation every
program combines all slices' (Chan et al.'s pairwise formula: exact, no cancellation). Phases
of a step, in running order:

- 0: the recurrent products of the slice (into ``abuf``) and their statistics;
- 1: the normalised products times their gains plus gx, the gate math; without a cell norm
  the new h and c; with one, c' and the o gate's pre-activation (into ``abuf``) and the
  statistics of c';
- 2 (LSTM with a cell norm): ``LN(c')`` and the new h and c (c', or with ``cell_norm`` 2
  ``LN(c')``).

Zoneout (``recurrence.keep_tile``'s masks) mixes each new h and c with the previous ones where
they are made, as the reference does.

As on the split path, the phases run behind the grid barrier in one launch or one launch per
phase; programs with W_hh streamed each run tiles ``p, p + n, ...`` of every phase
(``split.tile``), so that beyond the SM count a grid cut to the SMs still takes the barrier.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastrnn.kernels import gru, lstm
from fastrnn.kernels.common import (
    GATES,
    LSTM,
    MIN_BLOCK,
    NOT_SPECIALIZED,
    SPLIT_BLOCK_H,
    Config,
    block_offsets,
    chip_fits,
    chip_warps,
    direction,
    grid_barrier,
    load_tile,
    pow2,
    seq_offsets,
    sigmoid,
    step_rows,
    store_tile,
    tanh,
    torch_dot_precision,
    with_registers,
)
from fastrnn.kernels.recurrence import zoneout_forward
from fastrnn.kernels.split import chip_weights, gru_bhn, stream_gates, tile
from torch import Tensor

STATS = 10  # floats per row and slice in sbuf: 4 gate means, 4 gate M2s, c's mean and M2
_STATS = tl.constexpr(STATS)  # the same, visible inside the kernels


@triton.jit
def slice_moments(x0, x1, x2, x3, lanes, n, G: tl.constexpr, ALL: tl.constexpr):
    """Mean and sum of squared deviations per row of the [rows, slice] tiles' valid ``lanes``
    (``n`` of them per tile): of tile ``x0`` alone, or (ALL) of the first G tiles together."""
    total = tl.sum(tl.where(lanes, x0, 0.0), axis=1)
    count = n
    if ALL:
        if G > 1:
            total += tl.sum(tl.where(lanes, x1, 0.0), axis=1)
            total += tl.sum(tl.where(lanes, x2, 0.0), axis=1)
        if G > 3:
            total += tl.sum(tl.where(lanes, x3, 0.0), axis=1)
        count = n * G
    mean = total / count
    dev = tl.where(lanes, x0 - mean[:, None], 0.0)
    m2 = tl.sum(dev * dev, axis=1)
    if ALL:
        if G > 1:
            dev = tl.where(lanes, x1 - mean[:, None], 0.0)
            m2 += tl.sum(dev * dev, axis=1)
            dev = tl.where(lanes, x2 - mean[:, None], 0.0)
            m2 += tl.sum(dev * dev, axis=1)
        if G > 3:
            dev = tl.where(lanes, x3 - mean[:, None], 0.0)
            m2 += tl.sum(dev * dev, axis=1)
    return mean, m2


@triton.jit
def store_moments(sbuf_ptr, slot, mean, m2, rows, rmask):
    """A slice's two numbers of one statistic per row (``slot``: 0..3 a gate's or all gates',
    4: c's): its mean and M2 in the forward, its two sums in the backward."""
    tl.store(sbuf_ptr + rows * _STATS + 2 * slot, mean, mask=rmask)
    tl.store(sbuf_ptr + rows * _STATS + 2 * slot + 1, m2, mask=rmask)


@triton.jit
def combined_rstd(sbuf_ptr, slot, rows, rmask, B, H, NS, mult, eps,
                  BLOCK_H: tl.constexpr, BLOCK_S: tl.constexpr):
    """Mean and 1 / sqrt(variance + eps) per row over all NS slices of statistic ``slot``
    (``sbuf_ptr``: this direction's (NS, B, STATS) moments; ``mult`` values per hidden unit),
    BLOCK_S slices at a time: the mean first, then the squared deviations."""
    sl = tl.arange(0, BLOCK_S)
    total = (H * mult).to(tl.float32)
    acc = tl.zeros_like(rows).to(tl.float32)
    for s0 in range(0, NS, BLOCK_S):
        means, m2s, counts = _slice_moments(sbuf_ptr, slot, rows, rmask, B, H, NS, mult, s0 + sl,
                                            BLOCK_H)
        acc += tl.sum(means * counts[None, :], axis=1)
    mean = acc / total
    acc = tl.zeros_like(acc)
    for s0 in range(0, NS, BLOCK_S):
        means, m2s, counts = _slice_moments(sbuf_ptr, slot, rows, rmask, B, H, NS, mult, s0 + sl,
                                            BLOCK_H)
        dev = means - mean[:, None]
        acc += tl.sum(m2s, axis=1) + tl.sum(counts[None, :] * dev * dev, axis=1)
    return mean, 1.0 / tl.sqrt(acc / total + eps)


@triton.jit
def _slice_moments(sbuf_ptr, slot, rows, rmask, B, H, NS, mult, sl, BLOCK_H: tl.constexpr):
    """Slices ``sl``'s moments of ``slot`` ([rows, slices] means and M2s) and counts."""
    smask = sl < NS
    counts = tl.where(smask, (tl.minimum(BLOCK_H, H - sl * BLOCK_H) * mult).to(tl.float32), 0.0)
    offs = (sl[None, :] * B + rows[:, None]) * _STATS + 2 * slot
    mask = rmask[:, None] & smask[None, :]
    means = tl.load(sbuf_ptr + offs, mask=mask, other=0.0)
    return means, tl.load(sbuf_ptr + offs + 1, mask=mask, other=0.0), counts


@triton.jit
def saved_offsets(tt, rows, B, H, d, D, G: tl.constexpr):
    """Element offsets of direction ``d``'s first saved block for rows ``rows`` at positions
    ``tt`` in the (T, B, D, NB, H) saved values (``saved_blocks``)."""
    NB: tl.constexpr = 2 * G + 1 + (G == 4)
    return ((tt.to(tl.int64) * B + rows) * D + d) * (NB * H)


@triton.jit
def store_blocks4(ptr, off, cols, H, mask, v, N: tl.constexpr, x0, x1, x2, x3):
    """Store the first N of x0 .. x3 at blocks 0 .. N-1 from ``ptr + off``, zero where not v."""
    store_tile(ptr, off, cols, tl.where(v, x0, 0.0), mask)
    store_tile(ptr + H, off, cols, tl.where(v, x1, 0.0), mask)
    store_tile(ptr + 2 * H, off, cols, tl.where(v, x2, 0.0), mask)
    if N > 3:
        store_tile(ptr + 3 * H, off, cols, tl.where(v, x3, 0.0), mask)


@triton.jit
def gain(g_ptr, gate, cols, H):
    """[1, cols] gains of gate ``gate``'s block of ``g: (G*H,)``, float32."""
    return tl.load(g_ptr + gate * H + cols, mask=cols < H, other=0.0).to(tl.float32)[None, :]


@triton.jit
def ln_forward_tile(rows, cols, rmask, mask_h, lens, sl, s, kind, d, rev, w0, w1, w2, w3, gx_ptr,
                    w_ptr, g_ptr, wc_ptr, bc_ptr, bhn_ptr, y_ptr, hbuf_ptr, cbuf_ptr, abuf_ptr,
                    sbuf_ptr, ws_ptr, st_ptr, kh_ptr, kc_ptr, B, H, eps, D, per_gate, cell_norm,
                    save, zoneout, CELL: tl.constexpr, G: tl.constexpr, BLOCK_B: tl.constexpr,
                    BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_S: tl.constexpr,
                    W_ON_CHIP: tl.constexpr, PREC: tl.constexpr):
    """Phase ``kind`` of step ``s`` on one tile (rows ``rows`` of slice ``sl``: columns
    ``cols``) of direction ``d``, the direction's parameters and buffers at ``g_ptr``,
    ``cbuf_ptr``, ``abuf_ptr``, ``sbuf_ptr`` (see ``ln_forward_kernel``)."""
    lanes = (cols < H)[None, :]
    n = tl.minimum(BLOCK_H, H - sl * BLOCK_H)  # valid units in this slice
    NS = tl.cdiv(H, BLOCK_H)
    own = sbuf_ptr + sl * B * _STATS  # this slice's moments
    bhn = gru_bhn(CELL, bhn_ptr, d, cols, H, BLOCK_H)
    h_rd = hbuf_ptr + (2 * d + (s + 1) % 2) * B * H
    h_wr = hbuf_ptr + (2 * d + s % 2) * B * H
    a_off = rows * (G * H)
    tt, valid = step_rows(s, lens, rev)
    v = valid[:, None]
    if kind == 0:  # the products and their moments
        a0, a1, a2, a3 = stream_gates(h_rd, rows, rmask, w_ptr, d * G, w0, w1, w2, w3, cols,
                                      H, H, G, BLOCK_B, BLOCK_H, BLOCK_K, W_ON_CHIP, PREC,
                                      False)
        store_tile(abuf_ptr, a_off, cols, a0, mask_h)
        if G > 1:
            store_tile(abuf_ptr + H, a_off, cols, a1, mask_h)
            store_tile(abuf_ptr + 2 * H, a_off, cols, a2, mask_h)
        if G > 3:
            store_tile(abuf_ptr + 3 * H, a_off, cols, a3, mask_h)
        if per_gate != 0:
            mean, m2 = slice_moments(a0, a1, a2, a3, lanes, n, G, False)
            store_moments(own, 0, mean, m2, rows, rmask)
            if G > 1:
                mean, m2 = slice_moments(a1, a1, a2, a3, lanes, n, G, False)
                store_moments(own, 1, mean, m2, rows, rmask)
                mean, m2 = slice_moments(a2, a1, a2, a3, lanes, n, G, False)
                store_moments(own, 2, mean, m2, rows, rmask)
            if G > 3:
                mean, m2 = slice_moments(a3, a1, a2, a3, lanes, n, G, False)
                store_moments(own, 3, mean, m2, rows, rmask)
        else:
            mean, m2 = slice_moments(a0, a1, a2, a3, lanes, n, G, True)
            store_moments(own, 0, mean, m2, rows, rmask)
    elif kind == 1:  # the norm, the gates
        mult = G - (G - 1) * per_gate
        so = saved_offsets(tt, rows, B, H, d, D, G)
        st = ((tt.to(tl.int64) * B + rows) * D + d) * 8  # this step's saved 1/std
        keep = save != 0 and sl == 0  # one slice saves the 1/std
        mean, rstd = combined_rstd(sbuf_ptr, 0, rows, rmask, B, H, NS, mult, eps, BLOCK_H,
                                   BLOCK_S)
        if keep:
            tl.store(st_ptr + st, rstd, mask=rmask & valid)
        x0 = (load_tile(abuf_ptr, a_off, cols, mask_h) - mean[:, None]) * rstd[:, None]
        x1, x2, x3 = x0, x0, x0
        for k in tl.static_range(1, G):
            if per_gate != 0:
                mean, rstd = combined_rstd(sbuf_ptr, k, rows, rmask, B, H, NS, 1, eps,
                                           BLOCK_H, BLOCK_S)
                if keep:
                    tl.store(st_ptr + st + k, rstd, mask=rmask & valid)
            xk = load_tile(abuf_ptr + k * H, a_off, cols, mask_h)
            xk = (xk - mean[:, None]) * rstd[:, None]
            if k == 1:
                x1 = xk
            elif k == 2:
                x2 = xk
            else:
                x3 = xk
        if save != 0:  # the normalised products, before their gains
            store_blocks4(ws_ptr + G * H, so, cols, H, mask_h, v, G, x0, x1, x2, x3)
        r0 = x0 * gain(g_ptr, 0, cols, H)
        r1 = x1 * gain(g_ptr, 1, cols, H)
        r2 = x2 * gain(g_ptr, 2, cols, H)
        r3 = r0
        if G > 3:
            r3 = x3 * gain(g_ptr, 3, cols, H)
        hprev = load_tile(h_rd, rows * H, cols, mask_h)
        go, eo = block_offsets(tt, rows, B, H, d, D, G, G)  # (no extra blocks)
        if CELL == 0:
            c = load_tile(cbuf_ptr, rows * H, cols, mask_h)
            hn, cn, zi, zf, zg, zo, ce = lstm.forward(gx_ptr, go, cols, H, mask_h, r0, r1, r2,
                                                      r3, hprev, c, bhn)
            if save != 0:  # pre-activations
                store_blocks4(ws_ptr, so, cols, H, mask_h, v, 4, zi, zf, zg, zo)
            if cell_norm > 0:  # h and c after the cell norm, in the next phase
                store_tile(abuf_ptr, a_off, cols, cn, mask_h)
                store_tile(abuf_ptr + 3 * H, a_off, cols, zo, mask_h)
                mean, m2 = slice_moments(cn, cn, cn, cn, lanes, n, G, False)
                store_moments(own, 4, mean, m2, rows, rmask)
            else:
                hn, cn = zoneout_forward(CELL, zoneout, kh_ptr, kc_ptr, tt, rows, B, H, d, D,
                                         cols, mask_h & v, hprev, c, hn, cn)
                store_tile(cbuf_ptr, rows * H, cols, tl.where(v, cn, c), mask_h)
                if save != 0:  # the carried c
                    store_tile(ws_ptr + 2 * G * H, so, cols, tl.where(v, cn, 0.0), mask_h)
                hn = tl.where(v, hn, hprev)
                store_tile(h_wr, rows * H, cols, hn, mask_h)
                store_tile(y_ptr, seq_offsets(tt, rows, B, H, d, D), cols,
                           tl.where(v, hn, 0.0), mask_h)
        else:
            hn, cn, zr, zz, zn, z3, ze = gru.forward(gx_ptr, go, cols, H, mask_h, r0, r1, r2,
                                                     r3, hprev, hprev, bhn)
            if save != 0:  # pre-activations, h W_hn^T's normalised part + b_hn
                store_blocks4(ws_ptr, so, cols, H, mask_h, v, 3, zr, zz, zn, zn)
                store_tile(ws_ptr + 2 * G * H, so, cols, tl.where(v, ze, 0.0), mask_h)
            hn, cn = zoneout_forward(CELL, zoneout, kh_ptr, kc_ptr, tt, rows, B, H, d, D, cols,
                                     mask_h & v, hprev, hprev, hn, hprev)
            hn = tl.where(v, hn, hprev)
            store_tile(h_wr, rows * H, cols, hn, mask_h)
            store_tile(y_ptr, seq_offsets(tt, rows, B, H, d, D), cols, tl.where(v, hn, 0.0),
                       mask_h)
    else:  # the cell norm (LSTM)
        mean, rstd = combined_rstd(sbuf_ptr, 4, rows, rmask, B, H, NS, 1, eps, BLOCK_H,
                                   BLOCK_S)
        cp = load_tile(abuf_ptr, a_off, cols, mask_h)  # c'
        c = load_tile(cbuf_ptr, rows * H, cols, mask_h)
        wc = tl.load(wc_ptr + d * H + cols, mask=cols < H, other=0.0).to(tl.float32)
        bc = tl.load(bc_ptr + d * H + cols, mask=cols < H, other=0.0).to(tl.float32)
        chat = (cp - mean[:, None]) * rstd[:, None]
        out = chat * wc[None, :] + bc[None, :]
        zo = load_tile(abuf_ptr + 3 * H, a_off, cols, mask_h)
        hprev = load_tile(h_rd, rows * H, cols, mask_h)
        cn = cp
        if cell_norm == 2:
            cn = out
        hn, cn = zoneout_forward(CELL, zoneout, kh_ptr, kc_ptr, tt, rows, B, H, d, D, cols,
                                 mask_h & v, hprev, c, sigmoid(zo) * tanh(out), cn)
        hn = tl.where(v, hn, hprev)
        store_tile(h_wr, rows * H, cols, hn, mask_h)
        store_tile(y_ptr, seq_offsets(tt, rows, B, H, d, D), cols, tl.where(v, hn, 0.0),
                   mask_h)
        store_tile(cbuf_ptr, rows * H, cols, tl.where(v, cn, c), mask_h)
        if save != 0:  # the normalised c', its 1/std and the carried c
            so = saved_offsets(tt, rows, B, H, d, D, G)
            store_tile(ws_ptr + (2 * G + 1) * H, so, cols, tl.where(v, chat, 0.0), mask_h)
            store_tile(ws_ptr + 2 * G * H, so, cols, tl.where(v, cn, 0.0), mask_h)
            if sl == 0:
                st = ((tt.to(tl.int64) * B + rows) * D + d) * 8 + 4
                tl.store(st_ptr + st, rstd, mask=rmask & valid)


@triton.jit(do_not_specialize=NOT_SPECIALIZED + ["eps", "per_gate", "cell_norm", "save",
                                                 "zoneout", "barrier", "q_begin", "q_end"])
def ln_forward_kernel(
    gx_ptr,  # (T, B, D*G*H) input projection g_ih * LN(x W_ih^T) + biases (GRU: all but b_hn)
    w_ptr,  # (D, G*H, H) W_hh; its dtype is the tl.dot operand dtype
    g_ptr,  # (D, G*H) gain of the recurrent norm (ln_weight_hh)
    wc_ptr,  # (D, H) gain of the cell norm (LSTM with cell_norm)
    bc_ptr,  # (D, H) bias of the cell norm
    bhn_ptr,  # (D, H) GRU b_hn (zeros without biases)
    len_ptr,  # (B,) int32 sequence lengths (T each when none were given)
    y_ptr,  # (T, B, D*H) output: h of every step, zero past each length
    hbuf_ptr,  # (D, 2, B, H) float32: step s reads h from slot (s+1)%2, writes slot s%2
    cbuf_ptr,  # (D, B, H) float32 cell state (LSTM), updated in place
    abuf_ptr,  # (D, B, G*H) float32 this step's recurrent products (then c', the o gate's z)
    sbuf_ptr,  # (D, NS, B, STATS) float32 moments of every slice (NS = cdiv(H, BLOCK_H))
    ws_ptr,  # (T, B, D, NB, H) float32 values saved for backward when save (saved_blocks)
    st_ptr,  # (T, B, D, 8) float32 saved 1/std of the recurrent norm (per gate) and the cell's
    kh_ptr, kc_ptr,  # zoneout's keep values of h and (LSTM) c (recurrence.keep_tile)
    bar_ptr,  # int32 arrival counter of the grid barrier, zero at launch (when barrier)
    T, B, H,  # steps, batch, hidden size
    eps,  # the norms' epsilon
    D,  # directions in this launch: 1, or 2 (grid axis 2)
    reverse,  # 1: direction 0 runs from each sequence's last step back
    per_gate,  # 1: statistics per gate block of H, 0: over all G*H
    cell_norm,  # LSTM: 0 none, 1 h = o * tanh(LN(c)) (haste), 2 also c = LN(c) (fastrnns)
    save,  # 1: save what backward needs into ws and st
    zoneout,  # 0: none; 1: zoneout (recurrence.keep_tile's masks)
    barrier,  # 1: a grid barrier after each phase (all programs resident), 0: one phase
    q_begin, q_end,  # this launch runs phases q_begin .. q_end-1 (see the module docstring)
    CELL: tl.constexpr,  # cell code: 0 LSTM, 1 GRU
    G: tl.constexpr,  # gates per cell
    BLOCK_B: tl.constexpr,  # batch rows per program
    BLOCK_H: tl.constexpr,  # hidden units per program
    BLOCK_K: tl.constexpr,  # reduction chunk of the streamed products (W_ON_CHIP: all of H)
    BLOCK_S: tl.constexpr,  # slices' statistics combined per load: min(SLICE_CHUNK, pow2(NS))
    W_ON_CHIP: tl.constexpr,  # W_hh slice loaded once per launch, not streamed
    PREC: tl.constexpr,  # tl.dot input precision
):
    d, rev = direction(reverse)
    rows, cols, rmask, mask_h, mask_p, lens = tile(  # the program's own tile (W_ON_CHIP)
        tl.program_id(0), tl.program_id(1), B, H, H, len_ptr, BLOCK_B, BLOCK_H)
    NS = tl.cdiv(H, BLOCK_H)
    w0, w1, w2, w3 = chip_weights(w_ptr, d * G, cols, H, H, G, BLOCK_H, BLOCK_K, True, W_ON_CHIP)
    g_ptr += d * G * H  # this direction's parameters and buffers
    cbuf_ptr += d * B * H
    abuf_ptr += d * B * G * H
    sbuf_ptr += d * NS * B * _STATS
    phases = 2
    if CELL == 0:
        phases += (cell_norm > 0).to(tl.int32)
    nprog = tl.num_programs(0) * tl.num_programs(1) * D
    for q in range(q_begin, q_end):
        s = q // phases
        kind = q % phases
        if W_ON_CHIP:  # the program's own tile (its slice on chip)
            ln_forward_tile(rows, cols, rmask, mask_h, lens, tl.program_id(1), s, kind, d, rev,
                            w0, w1, w2, w3, gx_ptr, w_ptr, g_ptr, wc_ptr, bc_ptr, bhn_ptr, y_ptr,
                            hbuf_ptr, cbuf_ptr, abuf_ptr, sbuf_ptr, ws_ptr, st_ptr, kh_ptr,
                            kc_ptr, B, H, eps, D, per_gate, cell_norm, save, zoneout, CELL, G,
                            BLOCK_B, BLOCK_H, BLOCK_K, BLOCK_S, W_ON_CHIP, PREC)
        else:
            for t in range(tl.program_id(0) * tl.num_programs(1) + tl.program_id(1),
                           tl.cdiv(B, BLOCK_B) * NS, tl.num_programs(0) * tl.num_programs(1)):
                rows, cols, rmask, mask_h, mask_p, lens = tile(t // NS, t % NS, B, H, H,
                                                               len_ptr, BLOCK_B, BLOCK_H)
                ln_forward_tile(rows, cols, rmask, mask_h, lens, t % NS, s, kind, d, rev, w0, w1,
                                w2, w3, gx_ptr, w_ptr, g_ptr, wc_ptr, bc_ptr, bhn_ptr, y_ptr,
                                hbuf_ptr, cbuf_ptr, abuf_ptr, sbuf_ptr, ws_ptr, st_ptr, kh_ptr,
                                kc_ptr, B, H, eps, D, per_gate, cell_norm, save, zoneout, CELL,
                                G, BLOCK_B, BLOCK_H, BLOCK_K, BLOCK_S, W_ON_CHIP, PREC)
        if barrier:
            grid_barrier(bar_ptr, (q - q_begin + 1) * nprog)


# --- launcher -------------------------------------------------------------------------------


# Slices' statistics combined per load ([rows, SLICE_CHUNK] tiles; all of H = 2048's 128 at
# once spill).
SLICE_CHUNK = 32
# Reduction chunk of a streaming LayerNorm program, by the operands' bytes: larger chunks spill
# (sm_90, 8 warps; tests/test_kernel_compile.py).
STREAM_BLOCK_K = {2: 32, 4: 16}


def pick_ln_config(cell: int, hidden_size: int, dtype: torch.dtype,
                   backward: bool = False, on_chip: bool = True) -> Config:
    """The launch configuration of a LayerNorm layer: split programs of SPLIT_BLOCK_H units of
    a 16-row batch tile, the W_hh slice on chip where it fits and ``on_chip`` allows
    (``common.chip_fits``; in the backward by 8 warps, and not the half-precision GRU's 96 KB,
    which spill), else streamed in STREAM_BLOCK_K chunks by 8 warps."""
    bh = pow2(hidden_size)
    chip_bytes = GATES[cell] * SPLIT_BLOCK_H * bh * dtype.itemsize
    if on_chip and chip_fits(cell, bh, dtype) and not (backward and dtype.itemsize == 2
                                                       and chip_bytes > 64 * 1024):
        warps = 8 if backward else chip_warps(cell, chip_bytes, False, dtype)
        cfg = Config(False, MIN_BLOCK, SPLIT_BLOCK_H, bh, warps, w_on_chip=True)
    else:
        cfg = Config(False, MIN_BLOCK, SPLIT_BLOCK_H, min(STREAM_BLOCK_K[dtype.itemsize], bh), 8)
    return with_registers(cfg, dtype, False)


def ln_kernel_meta(cell: int, dtype: torch.dtype, cfg: Config, hidden_size: int,
                   interpreted: bool = False) -> dict:
    """The constexprs and options of ``ln_forward_kernel`` for a config."""
    slices = -(-hidden_size // cfg.block_h)
    return {"CELL": cell, "G": GATES[cell], "BLOCK_B": cfg.block_b, "BLOCK_H": cfg.block_h,
            "BLOCK_K": cfg.block_k, "BLOCK_S": min(SLICE_CHUNK, max(2, 1 << (slices - 1).bit_length())),
            "W_ON_CHIP": cfg.w_on_chip, "PREC": torch_dot_precision(dtype, interpreted),
            "num_warps": cfg.num_warps, "num_stages": cfg.num_stages, "maxnreg": cfg.maxnreg}


def ln_launch(cell: int, H: int, B: int, D: int, dtype: torch.dtype, device: torch.device,
              backward: bool) -> tuple[Config, tuple[int, int, int], bool]:
    """The config, grid and barrier of a LayerNorm layer's launch: beyond the SM count the
    streaming config (``launch._beyond_the_sms``), its grid cut to the SMs."""
    from fastrnn.kernels.launch import _beyond_the_sms, _grid

    cfg = pick_ln_config(cell, H, dtype, backward)
    grid, barrier = _grid(cfg, B, H, D, device)
    if _beyond_the_sms(cfg, barrier, True, device):
        cfg = pick_ln_config(cell, H, dtype, backward, on_chip=False)
        grid, barrier = _grid(cfg, B, H, D, device)
    return cfg, grid, barrier


CELL_NORM_CODES = {None: 0, "output": 1, "state": 2}


def saved_blocks(cell: int) -> int:
    """Blocks of H saved per step and direction: the G pre-activations, the G normalised
    recurrent products (before their gains), the carried c (LSTM) or the GRU's
    ``gain_n * LN(h W_hh^T)_n + b_hn``, and the LSTM's normalised c'."""
    return 2 * GATES[cell] + 1 + (cell == LSTM)


def ln_forward(
    cell: int,
    gx: Tensor,
    w_hh: Tensor,
    gain: Tensor,
    h0: Tensor,
    c0: Tensor | None = None,
    weight_c: Tensor | None = None,
    bias_c: Tensor | None = None,
    b_hn: Tensor | None = None,
    lengths: Tensor | None = None,
    reverse: int = 0,
    eps: float = 1e-5,
    per_gate: bool = False,
    cell_norm: str | None = None,
    save: bool = False,
    zoneout: tuple[Tensor, ...] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """D directions of a LayerNorm layer in one launch: gx: (T, B, D*G*H), w_hh: (D, G*H, H),
    gain: (D, G*H), h0: (D, B, H), c0, weight_c, bias_c: (D, B, H) / (D, H) (LSTM), b_hn:
    (D, H) (GRU) -> y: (T, B, D*H), h_n, c_n and, when saving, ws: (T, B, D, NB, H) (see
    ``saved_blocks``) and st: (T, B, D, 8) (1/std of the recurrent norm, per gate with
    per_gate, and of the cell norm in slot 4), float32. ``zoneout``: as ``launch.forward``'s."""
    from fastrnn.kernels.launch import _aligned, _lengths, _run_phases, _zoneout, is_interpreted

    D, GH, H = w_hh.shape
    T, B, _ = gx.shape
    cfg, grid, barrier = ln_launch(cell, H, B, D, gx.dtype, gx.device, backward=False)
    meta = ln_kernel_meta(cell, gx.dtype, cfg, H, is_interpreted(gx.device))
    f32 = {"device": gx.device, "dtype": torch.float32}
    hbuf = torch.empty(D, 2, B, H, **f32)
    hbuf[:, 1] = h0
    cbuf = hbuf if c0 is None else c0.float().clone()
    abuf = torch.empty(D, B, GH, **f32)
    sbuf = torch.empty(D, -(-H // cfg.block_h), B, STATS, **f32)
    y = gx.new_empty(T, B, D * H)
    norm = CELL_NORM_CODES[cell_norm] if cell == LSTM else 0
    ws = torch.empty(T, B, D, saved_blocks(cell), H, **f32) if save else hbuf
    st = torch.empty(T, B, D, 8, **f32) if save else hbuf
    like = gx.new_zeros(D, H)
    code, kh, kc = _zoneout(cell, zoneout, False, hbuf)
    args = (_aligned(gx), _aligned(w_hh.to(gx.dtype)), _aligned(gain), like if weight_c is None
            else _aligned(weight_c), like if bias_c is None else _aligned(bias_c),
            like if b_hn is None else _aligned(b_hn), _lengths(lengths, T, B, gx.device), y,
            hbuf, cbuf, abuf, sbuf, ws, st, kh, kc,
            torch.zeros(1, device=gx.device, dtype=torch.int32), T, B, H, float(eps), D,
            int(reverse), int(per_gate), norm, int(save), code)
    _run_phases(ln_forward_kernel, grid, args, meta, T * (2 + (norm > 0)), barrier)
    h_n = hbuf[:, (T - 1) % 2].to(gx.dtype)
    c_n = None if c0 is None else cbuf.to(gx.dtype)
    return y, h_n, c_n, ws if save else None, st if save else None
