"""Backward of the LayerNorm LSTM and GRU time loop (:mod:`fastrnn.kernels.layer_norm`).

Programs own ``BLOCK_H`` hidden units of a batch tile (or, streaming W_hh, run several such
tiles per phase), as in the forward; a norm's backward
``dx = rstd * (dx^ - mean(dx^) - x^ * mean(dx^ * x^))`` needs two means over the whole width,
which programs exchange as per-slice sums through ``sbuf``. Phases of a step ``s`` (running
backward from ``T-1``):

- 0: dh from the carry, dy and the recurrent gradients of step s+1 through W_hh (all of them:
  the phase before synchronised); the LSTM with a cell norm: the gradients of o and of the
  normalised cell state and their sums; otherwise the gate gradients (below);
- 1 (LSTM with a cell norm): the cell norm's backward, then the gate gradients: dgx, the
  carried dc, and the sums of the normalised recurrent products' gradients;
- last: the recurrent norm's backward, ``da`` (the gradient of ``h W_hh^T``) into ``rbuf``.

A last phase (``s = -1``) only brings step 0's ``da`` through W_hh into dh0. Under zoneout
(``recurrence.keep_split``) ``keep`` of the gradients of h and c passes to the previous state,
the rest to the cell's new values. The gradients of
the parameters are sums over steps and rows of the saved values and ``grads`` (in torch).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastrnn.kernels import gru
from fastrnn.kernels.common import (
    GATES,
    LSTM,
    NOT_SPECIALIZED,
    direction,
    grid_barrier,
    load_tile,
    prev_rows,
    seq_offsets,
    sigmoid,
    step_rows,
    store_tile,
    tanh,
)
from fastrnn.kernels.layer_norm import (
    _STATS,
    CELL_NORM_CODES,
    STATS,
    gain,
    ln_kernel_meta,
    ln_launch,
    saved_offsets,
    store_blocks4,
    store_moments,
)
from fastrnn.kernels.recurrence import keep_split
from fastrnn.kernels.split import chip_weights, gather_dh, tile
from torch import Tensor


@triton.jit
def slice_sums(g0, g1, g2, g3, x0, x1, x2, x3, lanes, G: tl.constexpr, ALL: tl.constexpr):
    """Per row: the sums of ``g`` and of ``g * x`` over the valid lanes of tile 0, or (ALL) of
    the first G tiles."""
    s1 = tl.sum(tl.where(lanes, g0, 0.0), axis=1)
    s2 = tl.sum(tl.where(lanes, g0 * x0, 0.0), axis=1)
    if ALL:
        s1 += tl.sum(tl.where(lanes, g1 + g2, 0.0), axis=1)
        s2 += tl.sum(tl.where(lanes, g1 * x1 + g2 * x2, 0.0), axis=1)
        if G > 3:
            s1 += tl.sum(tl.where(lanes, g3, 0.0), axis=1)
            s2 += tl.sum(tl.where(lanes, g3 * x3, 0.0), axis=1)
    return s1, s2


@triton.jit
def combined_means(sbuf_ptr, slot, rows, rmask, B, H, NS, mult, BLOCK_S: tl.constexpr):
    """The two means per row over all NS slices' sums of ``slot`` (``mult * H`` values),
    BLOCK_S slices at a time."""
    s1 = tl.zeros_like(rows).to(tl.float32)
    s2 = tl.zeros_like(s1)
    for s0 in range(0, NS, BLOCK_S):
        sl = s0 + tl.arange(0, BLOCK_S)
        offs = (sl[None, :] * B + rows[:, None]) * _STATS + 2 * slot
        mask = rmask[:, None] & (sl < NS)[None, :]
        s1 += tl.sum(tl.load(sbuf_ptr + offs, mask=mask, other=0.0), axis=1)
        s2 += tl.sum(tl.load(sbuf_ptr + offs + 1, mask=mask, other=0.0), axis=1)
    count = (mult * H).to(tl.float32)
    return s1 / count, s2 / count


@triton.jit
def norm_backward(dxhat, xhat, m1, m2, rstd):
    """A norm's input gradient from its normalised output's: rstd (dx^ - m1 - x^ m2)."""
    return rstd[:, None] * (dxhat - m1[:, None] - xhat * m2[:, None])


@triton.jit
def lstm_inputs(ws_ptr, so, c0_ptr, tt, lens, rows, cols, B, H, d, D, mask, rev,
                G: tl.constexpr):
    """A step's i, f, g and the carried c before it (from the saved values, or c0)."""
    zi = load_tile(ws_ptr, so, cols, mask)
    zf = load_tile(ws_ptr + H, so, cols, mask)
    zg = load_tile(ws_ptr + 2 * H, so, cols, mask)
    prev, first = prev_rows(tt, lens, rev)
    cprev = load_tile(ws_ptr + 2 * G * H, saved_offsets(prev, rows, B, H, d, D, G), cols,
                      mask & (first == 0)[:, None])
    cprev += load_tile(c0_ptr, (d * B + rows) * H, cols, mask & first[:, None])
    return sigmoid(zi), sigmoid(zf), tanh(zg), cprev


@triton.jit
def lstm_gates(dc, do, dc_keep, ws_ptr, so, gr_ptr, gro, dcbuf_ptr, c0_ptr, g_ptr, own, tt,
               lens, rows, rmask, cols, B, H, d, D, mask_h, mask, v, lanes, rev, per_gate,
               G: tl.constexpr):
    """The LSTM's gate gradients from dc' and do: stores dgx (grads blocks 0..3) and the carried
    dc (plus ``dc_keep``, zoneout's share), and this slice's sums for the recurrent norm's
    backward (``mask``: the valid rows' ``mask_h``; rows past their length get zero gradients
    and keep their carried dc)."""
    i, f, g, cprev = lstm_inputs(ws_ptr, so, c0_ptr, tt, lens, rows, cols, B, H, d, D, mask,
                                 rev, G)
    di = dc * g * i * (1.0 - i)
    df = dc * cprev * f * (1.0 - f)
    dg = dc * i * (1.0 - g * g)
    store_blocks4(gr_ptr, gro, cols, H, mask_h, v, 4, di, df, dg, do)
    store_tile(dcbuf_ptr, rows * H, cols, dc * f + dc_keep, mask)  # past their length: theirs
    recurrent_sums(di, df, dg, do, ws_ptr, so, g_ptr, own, rows, rmask, cols, H, mask, lanes,
                   per_gate, G)


@triton.jit
def recurrent_sums(r0, r1, r2, r3, ws_ptr, so, g_ptr, own, rows, rmask, cols, H, mask, lanes,
                   per_gate, G: tl.constexpr):
    """This slice's sums of the recurrent norm's dx^ = drec * gain and dx^ * x^ (per gate, or
    over all gates in slot 0), from the gradients ``r`` of ``gain * x^``."""
    x0 = load_tile(ws_ptr + G * H, so, cols, mask)
    x1 = load_tile(ws_ptr + (G + 1) * H, so, cols, mask)
    x2 = load_tile(ws_ptr + (G + 2) * H, so, cols, mask)
    x3 = x0
    d0, d1, d2 = r0 * gain(g_ptr, 0, cols, H), r1 * gain(g_ptr, 1, cols, H), r2 * gain(
        g_ptr, 2, cols, H)
    d3 = d0
    if G > 3:
        x3 = load_tile(ws_ptr + (G + 3) * H, so, cols, mask)
        d3 = r3 * gain(g_ptr, 3, cols, H)
    if per_gate != 0:
        s1, s2 = slice_sums(d0, d0, d0, d0, x0, x0, x0, x0, lanes, G, False)
        store_moments(own, 0, s1, s2, rows, rmask)
        s1, s2 = slice_sums(d1, d1, d1, d1, x1, x1, x1, x1, lanes, G, False)
        store_moments(own, 1, s1, s2, rows, rmask)
        s1, s2 = slice_sums(d2, d2, d2, d2, x2, x2, x2, x2, lanes, G, False)
        store_moments(own, 2, s1, s2, rows, rmask)
        if G > 3:
            s1, s2 = slice_sums(d3, d3, d3, d3, x3, x3, x3, x3, lanes, G, False)
            store_moments(own, 3, s1, s2, rows, rmask)
    else:
        s1, s2 = slice_sums(d0, d1, d2, d3, x0, x1, x2, x3, lanes, G, True)
        store_moments(own, 0, s1, s2, rows, rmask)


@triton.jit
def ln_backward_tile(rows, cols, rmask, mask_h, lens, sl, s, kind, phases, d, rev, w0, w1, w2,
                     w3, dy_ptr, w_ptr, g_ptr, wc_ptr, bc_ptr, h0_ptr, c0_ptr, y_ptr, ws_ptr,
                     st_ptr, gr_ptr, dhbuf_ptr, dcbuf_ptr, rbuf_ptr, sbuf_ptr, kh_ptr, kc_ptr, B,
                     H, D, per_gate, cell_norm, zoneout, CELL: tl.constexpr, G: tl.constexpr,
                     BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_S: tl.constexpr,
                     W_ON_CHIP: tl.constexpr, PREC: tl.constexpr):
    """Phase ``kind`` of step ``s`` on one tile (rows ``rows`` of slice ``sl``: columns
    ``cols``) of direction ``d``, the direction's parameters and buffers at ``g_ptr``,
    ``dhbuf_ptr``, ``dcbuf_ptr``, ``sbuf_ptr`` (see ``ln_backward_kernel``)."""
    lanes = (cols < H)[None, :]
    NS = tl.cdiv(H, BLOCK_H)
    own = sbuf_ptr + sl * B * _STATS  # this slice's sums
    NG: tl.constexpr = 2 * G + 1
    tt, valid = step_rows(s, lens, rev)
    v = valid[:, None]
    mask = mask_h & v
    so = saved_offsets(tt, rows, B, H, d, D, G)
    gro = ((tt.to(tl.int64) * B + rows) * D + d) * (NG * H)
    st = ((tt.to(tl.int64) * B + rows) * D + d) * 8
    if kind == 0:  # dh; the cell's backward (its first half with a cell norm)
        dh = gather_dh(load_tile(dhbuf_ptr, rows * H, cols, mask_h),
                       rbuf_ptr + (2 * d + (s + 1) % 2) * B * G * H, rows, rmask, w_ptr,
                       d * G, w0, w1, w2, w3, cols, H, H, G, BLOCK_K, W_ON_CHIP, PREC)
        if s >= 0:
            dh += load_tile(dy_ptr, seq_offsets(tt, rows, B, H, d, D), cols, mask)
            dhc, dh_keep = keep_split(kh_ptr, zoneout, tt, rows, B, H, d, D, cols, mask, dh)
            if CELL == 0:
                zo = load_tile(ws_ptr + 3 * H, so, cols, mask)
                dcarry, dc_keep = keep_split(kc_ptr, zoneout, tt, rows, B, H, d, D, cols,
                                             mask, load_tile(dcbuf_ptr, rows * H, cols, mask_h))
                o = sigmoid(zo)
                if cell_norm > 0:
                    chat = load_tile(ws_ptr + (2 * G + 1) * H, so, cols, mask)
                    wc = tl.load(wc_ptr + d * H + cols, mask=cols < H, other=0.0)
                    bc = tl.load(bc_ptr + d * H + cols, mask=cols < H, other=0.0)
                    t = tanh(chat * wc.to(tl.float32)[None, :] + bc.to(tl.float32)[None, :])
                    dout = dhc * o * (1.0 - t * t)
                    if cell_norm == 2:  # the carried c is the norm's output
                        dout += dcarry
                    store_tile(gr_ptr + 3 * H, gro, cols,
                               tl.where(v, dhc * t * o * (1.0 - o), 0.0), mask_h)
                    store_tile(gr_ptr + 2 * G * H, gro, cols, tl.where(v, dout, 0.0), mask_h)
                    dchat = dout * wc.to(tl.float32)[None, :]
                    s1, s2 = slice_sums(dchat, dchat, dchat, dchat, chat, chat, chat, chat,
                                        lanes, G, False)
                    store_moments(own, 4, s1, s2, rows, rmask)
                else:
                    cp = load_tile(ws_ptr + 2 * G * H, so, cols, mask)  # c' = the carried c
                    if zoneout > 0:  # the carried c is zoneout's mix: c' again
                        i, f, g, cprev = lstm_inputs(ws_ptr, so, c0_ptr, tt, lens, rows,
                                                     cols, B, H, d, D, mask, rev, G)
                        cp = f * cprev + i * g
                    t = tanh(cp)
                    dc = dcarry + dhc * o * (1.0 - t * t)
                    lstm_gates(dc, dhc * t * o * (1.0 - o), dc_keep, ws_ptr, so, gr_ptr,
                               gro, dcbuf_ptr, c0_ptr, g_ptr, own, tt, lens, rows, rmask,
                               cols, B, H, d, D, mask_h, mask, v, lanes, rev, per_gate, G)
                store_tile(dhbuf_ptr, rows * H, cols, tl.where(v, dh_keep, dh), mask_h)
            else:
                zr = load_tile(ws_ptr, so, cols, mask)
                zz = load_tile(ws_ptr + H, so, cols, mask)
                zn = load_tile(ws_ptr + 2 * H, so, cols, mask)
                hn = load_tile(ws_ptr + 2 * G * H, so, cols, mask)
                prev, first = prev_rows(tt, lens, rev)
                hprev = load_tile(y_ptr, seq_offsets(prev, rows, B, H, d, D), cols,
                                  mask & (first == 0)[:, None])
                hprev += load_tile(h0_ptr, (d * B + rows) * H, cols, mask & first[:, None])
                dr, dz, dn, dn_, r0, r1, r2, r3, dhd, dcx = gru.backward(dhc, dhc, zr, zz, zn,
                                                                        zn, hn, hprev)
                store_blocks4(gr_ptr, gro, cols, H, mask_h, v, 3, dr, dz, dn, dn)
                store_tile(gr_ptr + 2 * G * H, gro, cols, tl.where(v, r2, 0.0), mask_h)
                store_tile(dhbuf_ptr, rows * H, cols, tl.where(v, dhd + dh_keep, dh), mask_h)
                recurrent_sums(r0, r1, r2, r2, ws_ptr, so, g_ptr, own, rows, rmask, cols, H,
                               mask, lanes, per_gate, G)
        else:
            store_tile(dhbuf_ptr, rows * H, cols, dh, mask_h)
    elif kind == phases - 1:  # the recurrent norm's backward: da, for the step before
        mult = G - (G - 1) * per_gate
        m1, m2 = combined_means(sbuf_ptr, 0, rows, rmask, B, H, NS, mult, BLOCK_S)
        rstd = tl.load(st_ptr + st, mask=rmask & valid, other=0.0)
        r_wr = rbuf_ptr + (2 * d + s % 2) * B * G * H
        for k in tl.static_range(G):
            if per_gate != 0:
                if k > 0:
                    m1, m2 = combined_means(sbuf_ptr, k, rows, rmask, B, H, NS, 1, BLOCK_S)
                    rstd = tl.load(st_ptr + st + k, mask=rmask & valid, other=0.0)
            if CELL == 1 and k == 2:  # the GRU's n block: r * dn
                drec = load_tile(gr_ptr + 2 * G * H, gro, cols, mask)
            else:
                drec = load_tile(gr_ptr + k * H, gro, cols, mask)
            xhat = load_tile(ws_ptr + (G + k) * H, so, cols, mask)
            da = tl.where(v, norm_backward(drec * gain(g_ptr, k, cols, H), xhat, m1, m2, rstd),
                          0.0)
            store_tile(gr_ptr + (G + k) * H, gro, cols, da, mask_h)
            store_tile(r_wr + k * H, rows * G * H, cols, da, mask_h)
    else:  # the LSTM's cell norm backward, then its gates
        m1, m2 = combined_means(sbuf_ptr, 4, rows, rmask, B, H, NS, 1, BLOCK_S)
        rstd = tl.load(st_ptr + st + 4, mask=rmask & valid, other=0.0)
        chat = load_tile(ws_ptr + (2 * G + 1) * H, so, cols, mask)
        wc = tl.load(wc_ptr + d * H + cols, mask=cols < H, other=0.0).to(tl.float32)
        dout = load_tile(gr_ptr + 2 * G * H, gro, cols, mask)
        dc = norm_backward(dout * wc[None, :], chat, m1, m2, rstd)
        dcarry, dc_keep = keep_split(kc_ptr, zoneout, tt, rows, B, H, d, D, cols, mask,
                                     load_tile(dcbuf_ptr, rows * H, cols, mask_h))
        if cell_norm == 1:  # the carried c is c' itself
            dc += dcarry
        do = load_tile(gr_ptr + 3 * H, gro, cols, mask)
        lstm_gates(dc, do, dc_keep, ws_ptr, so, gr_ptr, gro, dcbuf_ptr, c0_ptr, g_ptr, own,
                   tt, lens, rows, rmask, cols, B, H, d, D, mask_h, mask, v, lanes, rev,
                   per_gate, G)


@triton.jit(do_not_specialize=NOT_SPECIALIZED + ["per_gate", "cell_norm", "zoneout", "barrier",
                                                 "q_begin", "q_end"])
def ln_backward_kernel(
    dy_ptr,  # (T, B, D*H) gradient of the output
    w_ptr,  # (D, G*H, H) W_hh
    g_ptr,  # (D, G*H) gain of the recurrent norm
    wc_ptr,  # (D, H) gain of the cell norm (LSTM with cell_norm)
    bc_ptr,  # (D, H) bias of the cell norm
    h0_ptr,  # (D, B, H) initial hidden state (GRU reads it)
    c0_ptr,  # (D, B, H) initial cell state (LSTM reads it)
    y_ptr,  # (T, B, D*H) forward output (the GRU's previous h)
    ws_ptr,  # (T, B, D, NB, H) float32 values saved by the forward (layer_norm.saved_blocks)
    st_ptr,  # (T, B, D, 8) float32 saved 1/std: the recurrent norm's (per gate), the cell's (4)
    len_ptr,  # (B,) int32 sequence lengths (T each when none were given)
    gr_ptr,  # (T, B, D, 2G+1, H) float32 out: dgx (G blocks), da (G blocks), and the LSTM's
             # gradient of the cell norm's output or the GRU's of its n block (r * dn)
    dhbuf_ptr,  # (D, B, H) float32 dh carried between steps (starts as dh_n, ends as dh0)
    dcbuf_ptr,  # (D, B, H) float32 dc carried between steps (LSTM; dc_n to dc0)
    rbuf_ptr,  # (D, 2, B, G*H) da of step s in slot s%2 (slot T%2 zero), W_hh's dtype
    sbuf_ptr,  # (D, NS, B, STATS) float32 every slice's sums
    kh_ptr, kc_ptr,  # zoneout's keep values of h and (LSTM) c (recurrence.keep_tile)
    bar_ptr,  # int32 arrival counter of the grid barrier, zero at launch (when barrier)
    T, B, H,  # steps, batch, hidden size
    D,  # directions in this launch: 1, or 2 (grid axis 2)
    reverse,  # 1: direction 0 ran from each sequence's last step back
    per_gate,  # 1: statistics per gate block of H, 0: over all G*H
    cell_norm,  # LSTM: 0 none, 1 h = o * tanh(LN(c)), 2 also c = LN(c)
    zoneout,  # the forward's zoneout code (recurrence.keep_tile)
    barrier,  # 1: a grid barrier after each phase (all programs resident), 0: one phase
    q_begin, q_end,  # this launch runs phases q_begin .. q_end-1 (see the module docstring)
    CELL: tl.constexpr,  # cell code: 0 LSTM, 1 GRU
    G: tl.constexpr,  # gates per cell
    BLOCK_B: tl.constexpr,  # batch rows per program
    BLOCK_H: tl.constexpr,  # hidden units per program
    BLOCK_K: tl.constexpr,  # reduction chunk of the streamed products (W_ON_CHIP: all of H)
    BLOCK_S: tl.constexpr,  # slices' sums combined per load (layer_norm.ln_kernel_meta)
    W_ON_CHIP: tl.constexpr,  # W_hh slice loaded once per launch, not streamed
    PREC: tl.constexpr,  # tl.dot input precision
):
    d, rev = direction(reverse)
    rows, cols, rmask, mask_h, mask_p, lens = tile(  # the program's own tile (W_ON_CHIP)
        tl.program_id(0), tl.program_id(1), B, H, H, len_ptr, BLOCK_B, BLOCK_H)
    NS = tl.cdiv(H, BLOCK_H)
    w0, w1, w2, w3 = chip_weights(w_ptr, d * G, cols, H, H, G, BLOCK_H, BLOCK_K, False, W_ON_CHIP)
    g_ptr += d * G * H  # this direction's parameters and buffers
    dhbuf_ptr += d * B * H
    dcbuf_ptr += d * B * H
    sbuf_ptr += d * NS * B * _STATS
    phases = 2
    if CELL == 0:
        phases += (cell_norm > 0).to(tl.int32)
    nprog = tl.num_programs(0) * tl.num_programs(1) * D
    for q in range(q_begin, q_end):
        s = T - 1 - q // phases
        kind = q % phases
        if W_ON_CHIP:  # the program's own tile (its slice on chip)
            ln_backward_tile(rows, cols, rmask, mask_h, lens, tl.program_id(1), s, kind, phases,
                             d, rev, w0, w1, w2, w3, dy_ptr, w_ptr, g_ptr, wc_ptr, bc_ptr,
                             h0_ptr, c0_ptr, y_ptr, ws_ptr, st_ptr, gr_ptr, dhbuf_ptr, dcbuf_ptr,
                             rbuf_ptr, sbuf_ptr, kh_ptr, kc_ptr, B, H, D, per_gate, cell_norm,
                             zoneout, CELL, G, BLOCK_H, BLOCK_K, BLOCK_S, W_ON_CHIP, PREC)
        else:
            for t in range(tl.program_id(0) * tl.num_programs(1) + tl.program_id(1),
                           tl.cdiv(B, BLOCK_B) * NS, tl.num_programs(0) * tl.num_programs(1)):
                rows, cols, rmask, mask_h, mask_p, lens = tile(t // NS, t % NS, B, H, H,
                                                               len_ptr, BLOCK_B, BLOCK_H)
                ln_backward_tile(rows, cols, rmask, mask_h, lens, t % NS, s, kind, phases, d,
                                 rev, w0, w1, w2, w3, dy_ptr, w_ptr, g_ptr, wc_ptr, bc_ptr,
                                 h0_ptr, c0_ptr, y_ptr, ws_ptr, st_ptr, gr_ptr, dhbuf_ptr,
                                 dcbuf_ptr, rbuf_ptr, sbuf_ptr, kh_ptr, kc_ptr, B, H, D,
                                 per_gate, cell_norm, zoneout, CELL, G, BLOCK_H, BLOCK_K,
                                 BLOCK_S, W_ON_CHIP, PREC)
        if barrier:
            grid_barrier(bar_ptr, (q - q_begin + 1) * nprog)


# --- launcher -------------------------------------------------------------------------------


def ln_backward(
    cell: int, dy: Tensor, dh_n: Tensor, dc_n: Tensor | None, w_hh: Tensor, gain: Tensor,
    weight_c: Tensor | None, bias_c: Tensor | None, h0: Tensor, c0: Tensor | None, y: Tensor,
    ws: Tensor, st: Tensor, lengths: Tensor | None = None, reverse: int = 0,
    per_gate: bool = False, cell_norm: str | None = None,
    zoneout: tuple[Tensor, ...] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Gradients through D directions of a LayerNorm layer (shapes as ``ln_forward``'s; ws and
    st what it saved) -> grads: (T, B, D, 2G+1, H) float32 (dgx, da = the gradient of
    ``h W_hh^T``, and the LSTM's gradient of the cell norm's output or the GRU's of its n
    block), dh0: (D, B, H), dc0 (LSTM)."""
    from fastrnn.kernels.launch import _aligned, _lengths, _run_phases, _zoneout, is_interpreted

    D, GH, H = w_hh.shape
    T, B, _ = y.shape
    G = GATES[cell]
    cfg, grid, barrier = ln_launch(cell, H, B, D, y.dtype, y.device, backward=True)
    meta = ln_kernel_meta(cell, y.dtype, cfg, H, is_interpreted(y.device))
    f32 = {"device": y.device, "dtype": torch.float32}
    grads = torch.empty(T, B, D, 2 * G + 1, H, **f32)
    dhbuf = dh_n.float().clone()
    dcbuf = dhbuf if dc_n is None else dc_n.float().clone()
    rbuf = torch.zeros(D, 2, B, GH, device=y.device, dtype=y.dtype)
    sbuf = torch.empty(D, -(-H // cfg.block_h), B, STATS, **f32)
    norm = CELL_NORM_CODES[cell_norm] if cell == LSTM else 0
    like = y.new_zeros(D, H)
    code, kh, kc = _zoneout(cell, zoneout, False, sbuf)
    args = (_aligned(dy), _aligned(w_hh.to(y.dtype)), _aligned(gain),
            like if weight_c is None else _aligned(weight_c),
            like if bias_c is None else _aligned(bias_c), _aligned(h0),
            like if c0 is None else _aligned(c0), _aligned(y), ws, st,
            _lengths(lengths, T, B, y.device), grads, dhbuf, dcbuf, rbuf, sbuf, kh, kc,
            torch.zeros(1, device=y.device, dtype=torch.int32), T, B, H, D, int(reverse),
            int(per_gate), norm, code)
    phases = 2 + (norm > 0)
    _run_phases(ln_backward_kernel, grid, args, meta, T * phases + 1, barrier)
    return grads, dhbuf.to(y.dtype), None if dc_n is None else dcbuf.to(y.dtype)
