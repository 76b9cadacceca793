"""The per-step cell helpers every time-loop kernel shares, and the *resident* kernels.

*Resident* kernels (grid: batch tiles) own the whole hidden width: W_hh (and W_hr) are loaded
once before the time loop, h and c stay in registers across all steps. Larger problems take the
split kernels of :mod:`fastrnn.kernels.split`.

Backward runs the steps in the opposite order, producing the gate gradients ``dgx`` (also the
gradient of the input projection), dh0 and dc0; weight gradients are GEMMs in torch.
"""

import triton
import triton.language as tl
from fastrnn.kernels import gru, lstm, rnn, slstm
from fastrnn.kernels.common import (
    NOT_SPECIALIZED,
    block_offsets,
    direction,
    gate_weights,
    load_tile,
    load_w,
    mm,
    prev_rows,
    seq_offsets,
    sigmoid,
    state_offsets,
    step_rows,
    store_tile,
    tanh,
    tile_masks,
)

# CELL codes: 0 LSTM, 1 GRU, 2 Elman RNN, 4 sLSTM (common.CELLS; the RNN's relu variant is the
# runtime flag ``relu``, so tanh and relu share one compiled kernel). Cell states besides h
# (common.CELL_STATES) are the tiles ``c`` (LSTM, sLSTM), ``n`` and ``m`` (sLSTM; elsewhere
# unused placeholders).


@triton.jit
def cell_forward(CELL: tl.constexpr, x_ptr, x_off, cols, H, mask, a0, a1, a2, a3, hprev, c, n,
                 m, bhn, relu):
    """Dispatch one step's gate math: returns (new h before projection, new c, n, m, the
    saved values: 4 gate slots (the first G used) and the first extra block's)."""
    if CELL == 0:
        h, c, s0, s1, s2, s3, se = lstm.forward(x_ptr, x_off, cols, H, mask, a0, a1, a2, a3, hprev, c, bhn)
    elif CELL == 1:
        h, c, s0, s1, s2, s3, se = gru.forward(x_ptr, x_off, cols, H, mask, a0, a1, a2, a3, hprev, c, bhn)
    elif CELL == 4:
        h, c, n, m, s0, s1, s2, s3 = slstm.forward(x_ptr, x_off, cols, H, mask, a0, a1, a2, a3, c, n, m)
        se = c
    else:
        h, c = rnn.forward(x_ptr, x_off, cols, H, mask, a0, hprev, c, relu)
        s0, s1, s2, s3, se = h, h, h, h, h
    return h, c, n, m, s0, s1, s2, s3, se


@triton.jit
def cell_backward(CELL: tl.constexpr, dh, dc, dn, dm, s0, s1, s2, s3, se, se1, se2, prev,
                  prev_n, prev_m, relu):
    """Dispatch one step's gradients: (4 gate grads, 4 recurrent grads, dh direct, the
    gradients of the previous c, n and m)."""
    if CELL == 0:
        d0, d1, d2, d3, r0, r1, r2, r3, dhd, dc = lstm.backward(dh, dc, s0, s1, s2, s3, se, prev)
    elif CELL == 1:
        d0, d1, d2, d3, r0, r1, r2, r3, dhd, dc = gru.backward(dh, dc, s0, s1, s2, s3, se, prev)
    elif CELL == 4:
        d0, d1, d2, d3, dc, dn, dm = slstm.backward(dh, dc, dn, dm, s0, s1, s2, s3, se, se1, prev,
                                                    prev_n, prev_m)
        r0, r1, r2, r3, dhd = d0, d1, d2, d3, tl.zeros_like(dh)
    else:
        d0 = rnn.backward(dh, s0, relu)
        d1, d2, d3, r0, r1, r2, r3, dhd = d0, d0, d0, d0, d0, d0, d0, d0
    return d0, d1, d2, d3, r0, r1, r2, r3, dhd, dc, dn, dm


@triton.jit
def keep_tile(k_ptr, tt, rows, B, X, d, D, cols, mask):
    """Zoneout's keep values (float32 [rows, cols]) at positions ``tt`` of the ``(T, B, D*X)``
    keep tensor: Bernoulli masks in training, the probability itself in evaluation (the
    launchers fill it; a constant in the kernel would cost registers the spill checks do not
    have). The offsets are y's (X = P), computed once for both."""
    return load_tile(k_ptr, seq_offsets(tt, rows, B, X, d, D), cols, mask)


@triton.jit
def zoneout_forward(CELL: tl.constexpr, zoneout, kh_ptr, kc_ptr, tt, rows, B, H, d, D, cols,
                    mask, h, c, hn, cn):
    """A step's new h and (LSTM) c after zoneout (``zoneout`` > 0, masks in ``keep_tile``):
    ``keep * previous + (1 - keep) * new``, the reference's formula (not compiled into the
    sLSTM's kernels, which take no zoneout)."""
    if CELL != 4:
        if zoneout > 0:
            kh = keep_tile(kh_ptr, tt, rows, B, H, d, D, cols, mask)
            hn = kh * h + (1.0 - kh) * hn
            if CELL == 0:
                kc = keep_tile(kc_ptr, tt, rows, B, H, d, D, cols, mask)
                cn = kc * c + (1.0 - kc) * cn
    return hn, cn


@triton.jit
def zoneout_backward(CELL: tl.constexpr, zoneout, kh_ptr, kc_ptr, tt, rows, B, H, d, D, cols,
                     mask, dh, dc):
    """Zoneout's share of a step's gradients of h and (LSTM) c that reaches the cell's new
    values, ``(1 - keep)`` of each (``zoneout_carry`` adds the rest to the previous state's;
    the LSTM's backward recomputes its c before zoneout, see ``lstm.backward``)."""
    if CELL != 4:
        if zoneout > 0:
            dh = (1.0 - keep_tile(kh_ptr, tt, rows, B, H, d, D, cols, mask)) * dh
            if CELL == 0:
                dc = (1.0 - keep_tile(kc_ptr, tt, rows, B, H, d, D, cols, mask)) * dc
    return dh, dc


@triton.jit
def zoneout_carry(CELL: tl.constexpr, zoneout, kh_ptr, kc_ptr, tt, rows, B, H, d, D, cols,
                  mask, dh, dc, dh_prev, dc_prev):
    """The previous state's gradients ``dh_prev``, ``dc_prev`` plus zoneout's ``keep`` of the
    step's ``dh`` and (LSTM) ``dc`` (the keep values loaded again, not held through the
    step's products)."""
    if CELL != 4:
        if zoneout > 0:
            dh_prev += keep_tile(kh_ptr, tt, rows, B, H, d, D, cols, mask) * dh
            if CELL == 0:
                dc_prev += keep_tile(kc_ptr, tt, rows, B, H, d, D, cols, mask) * dc
    return dh_prev, dc_prev


@triton.jit
def keep_split(k_ptr, zoneout, tt, rows, B, H, d, D, cols, mask, g):
    """A state's gradient ``g`` split by zoneout's keep values: ``((1 - keep) g``, the new
    value's, ``keep g``, the previous state's); ``(g, 0)`` without zoneout."""
    kept = tl.zeros_like(g)
    if zoneout > 0:
        k = keep_tile(k_ptr, tt, rows, B, H, d, D, cols, mask)
        kept = k * g
        g = (1.0 - k) * g
    return g, kept


@triton.jit
def store_blocks(ptr, off, extra, cols, H, mask, v, G: tl.constexpr, EXTRA: tl.constexpr, x0,
                 x1, x2, x3, xe, xe1, xe2):
    """Store the first ``G`` of the [rows, hidden] tiles ``x0 .. x3`` at
    ``ptr + off + k*H + cols`` and the first ``EXTRA`` (0, 1 or 3) of ``xe, xe1, xe2`` at
    ``ptr + extra + off + k*H + cols`` (see common.block_offsets), zero in rows where ``v``
    ([rows, 1]) is false."""
    store_tile(ptr, off, cols, tl.where(v, x0, 0.0), mask)
    if G > 1:
        store_tile(ptr + H, off, cols, tl.where(v, x1, 0.0), mask)
        store_tile(ptr + 2 * H, off, cols, tl.where(v, x2, 0.0), mask)
    if G > 3:
        store_tile(ptr + 3 * H, off, cols, tl.where(v, x3, 0.0), mask)
    if EXTRA > 0:
        store_tile(ptr + extra, off, cols, tl.where(v, xe, 0.0), mask)
    if EXTRA > 1:
        store_tile(ptr + extra + H, off, cols, tl.where(v, xe1, 0.0), mask)
        store_tile(ptr + extra + 2 * H, off, cols, tl.where(v, xe2, 0.0), mask)


@triton.jit
def load_saved(ws_ptr, off, extra, cols, H, mask, G: tl.constexpr, S: tl.constexpr):
    """A step's saved tiles (see ``store_blocks``): ``G`` gate tiles (the rest repeat the
    first) and the ``S - G`` extra ones (the rest repeat the first tile)."""
    s0 = load_tile(ws_ptr, off, cols, mask)
    s1, s2, s3, se, se1, se2 = s0, s0, s0, s0, s0, s0
    if G > 1:
        s1 = load_tile(ws_ptr + H, off, cols, mask)
        s2 = load_tile(ws_ptr + 2 * H, off, cols, mask)
    if G > 3:
        s3 = load_tile(ws_ptr + 3 * H, off, cols, mask)
    if S > G:
        se = load_tile(ws_ptr + extra, off, cols, mask)
    if S > G + 1:
        se1 = load_tile(ws_ptr + extra + H, off, cols, mask)
        se2 = load_tile(ws_ptr + extra + 2 * H, off, cols, mask)
    return s0, s1, s2, s3, se, se1, se2


@triton.jit
def store_grads(dgx_ptr, off, extra, cols, H, mask, v, CELL: tl.constexpr,
                G: tl.constexpr, PROJ: tl.constexpr, d0, d1, d2, d3, r2, s3, se):
    """Store a step's gate gradients and the extra block the weight gradients need: the GRU's
    ``r * dn`` (``r2``), the LSTM's ``m = o * tanh(c)`` with a projection (``s3``, ``se``: the
    saved pre-activation of o and c). ``dgx`` may be ws itself: its tiles of this step were
    read before (and no later step reads them: the LSTM's c of a step is the previous c only of
    the step after it, whose backward ran before, behind a barrier)."""
    xe = r2
    if PROJ:
        xe = sigmoid(s3) * tanh(se)
    store_blocks(dgx_ptr, off, extra, cols, H, mask, v, G, CELL == 1 or PROJ, d0, d1, d2, d3, xe,
                 xe, xe)


@triton.jit
def load_prev_state(CELL: tl.constexpr, ws_ptr, y_ptr, h0_ptr, c0_ptr, tt, lens, rows, B, H,
                    cols, mask, G: tl.constexpr, S: tl.constexpr, rev, d, D):
    """The states before position ``tt`` that a cell's backward needs: LSTM c (ws's extra
    block), GRU h (y), sLSTM c, n and m (ws's extra blocks); the second and third are the
    first again except for the sLSTM."""
    prev, first = prev_rows(tt, lens, rev)
    seq_mask = mask & (first == 0)[:, None]
    init_mask = mask & first[:, None]
    if CELL == 1:
        p0 = load_tile(y_ptr, seq_offsets(prev, rows, B, H, d, D), cols, seq_mask)
        p0 += load_tile(h0_ptr, (d * B + rows) * H, cols, init_mask)
        p1, p2 = p0, p0
    else:
        off, extra = block_offsets(prev, rows, B, H, d, D, G, S)
        p0 = load_tile(ws_ptr + extra, off, cols, seq_mask)
        p0 += load_tile(c0_ptr, state_offsets(CELL, d, 0, rows, B, H), cols, init_mask)
        p1, p2 = p0, p0
        if CELL == 4:
            p1 = load_tile(ws_ptr + extra + H, off, cols, seq_mask)
            p1 += load_tile(c0_ptr, state_offsets(CELL, d, 1, rows, B, H), cols, init_mask)
            p2 = load_tile(ws_ptr + extra + 2 * H, off, cols, seq_mask)
            p2 += load_tile(c0_ptr, state_offsets(CELL, d, 2, rows, B, H), cols, init_mask)
    return p0, p1, p2


@triton.jit(do_not_specialize=NOT_SPECIALIZED + ["gx_blocks", "zoneout"])
def resident_forward_kernel(
    gx_ptr,  # (T, B, D*gx_blocks*H) input projection, biases folded in (GRU: all but b_hn);
             # when the forward saves, ws itself, the projection in its gate blocks
    w_ptr,  # (D, G*H, P) W_hh; its dtype is the tl.dot operand dtype
    wr_ptr,  # (D, P, H) W_hr when PROJ
    bhn_ptr,  # (D, H) GRU b_hn (zeros without biases)
    h0_ptr,  # (D, B, P) initial hidden state
    c0_ptr,  # (D, C, B, H) initial cell states (common.CELL_STATES; LSTM c: (D, B, H))
    len_ptr,  # (B,) int32 sequence lengths (T each when none were given)
    y_ptr,  # (T, B, D*P) output: h of every step, zero past each length
    hn_ptr,  # (D, B, P) final hidden state
    cn_ptr,  # (D, C, B, H) final cell states
    ws_ptr,  # (T, B, D*S*H) values saved for backward when gx_blocks == S (common.SAVED);
             # an Elman RNN under zoneout (code 2): (T, B, D*H) its h before zoneout
    kh_ptr, kc_ptr,  # zoneout's keep values of h and (LSTM) c (see keep_tile), when zoneout
    T, B, H, P,  # steps, batch, hidden size, output size (P = proj size or H)
    relu,  # Elman RNN: 1 for relu, 0 for tanh
    D,  # directions in this launch: 1, or 2 (grid axis 2)
    reverse,  # 1: direction 0 runs (ran) from each sequence's last step back
    gx_blocks,  # blocks of H per direction in gx's rows: S when the forward saves, else G
    zoneout,  # 0: none; 1: zoneout (keep_tile's masks); 2: also the RNN saves its h before
    CELL: tl.constexpr,  # cell code
    G: tl.constexpr,  # gates per cell: 4, 3, 1
    S: tl.constexpr,  # saved tiles per step of ws (0: the cell saves none, see SAVED)
    BLOCK_B: tl.constexpr,  # batch rows per program
    BLOCK_H: tl.constexpr,  # power of two >= H
    BLOCK_P: tl.constexpr,  # power of two >= P
    PROJ: tl.constexpr,  # LSTM projection h = W_hr (o * tanh(c))
    PREC: tl.constexpr,  # tl.dot input precision: "ieee" or "tf32"
):
    d, rev = direction(reverse)
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    hcols = tl.arange(0, BLOCK_H)
    pcols = tl.arange(0, BLOCK_P)
    rmask, mask_h, mask_p, lens = tile_masks(rows, hcols, pcols, B, H, P, len_ptr)
    hlanes, planes = (hcols < H)[None, :], (pcols < P)[None, :]
    # W_hh^T per gate, [BLOCK_P, BLOCK_H], on chip for the whole loop
    w0, w1, w2, w3 = gate_weights(w_ptr, d * G, hcols, pcols, H, P, G, True)
    if PROJ:
        wr = load_w(wr_ptr, d, pcols, hcols, P, H, True)  # W_hr^T: [BLOCK_H, BLOCK_P]
    bhn = tl.zeros([BLOCK_H], dtype=tl.float32)
    if CELL == 1:
        bhn = tl.load(bhn_ptr + d * H + hcols, mask=hcols < H, other=0.0).to(tl.float32)
    h = load_tile(h0_ptr, (d * B + rows) * P, pcols, mask_p)
    c = tl.zeros([BLOCK_B, BLOCK_H], dtype=tl.float32)
    n, m = c, c
    if CELL == 0 or CELL == 4:
        c = load_tile(c0_ptr, state_offsets(CELL, d, 0, rows, B, H), hcols, mask_h)
    if CELL == 4:
        n = load_tile(c0_ptr, state_offsets(CELL, d, 1, rows, B, H), hcols, mask_h)
        m = load_tile(c0_ptr, state_offsets(CELL, d, 2, rows, B, H), hcols, mask_h)
    for s in range(T):
        tt, valid = step_rows(s, lens, rev)
        v = valid[:, None]
        hq = h.to(w_ptr.dtype.element_ty)
        a0 = mm(hq, w0, PREC)
        a1, a2, a3 = a0, a0, a0
        if G > 1:
            a1 = mm(hq, w1, PREC)
            a2 = mm(hq, w2, PREC)
        if G > 3:
            a3 = mm(hq, w3, PREC)
        go, eo = block_offsets(tt, rows, B, H, d, D, G, gx_blocks)
        hn, cn, nn, mn, s0, s1, s2, s3, se = cell_forward(CELL, gx_ptr, go, hcols, H, mask_h, a0,
                                                          a1, a2, a3, h, c, n, m, bhn, relu)
        if CELL == 2:
            if zoneout == 2:  # an RNN's backward needs its h before zoneout
                store_tile(ws_ptr, seq_offsets(tt, rows, B, H, d, D), hcols,
                           tl.where(v, hn, 0.0), mask_h)
        if not PROJ:  # (the launchers take no zoneout with a projection)
            hn, cn = zoneout_forward(CELL, zoneout, kh_ptr, kc_ptr, tt, rows, B, P, d, D, hcols,
                                     mask_h & v, h, c, hn, cn)
        if CELL == 0:
            se = cn  # the LSTM saves its state c (after zoneout)
        # padded lanes of h (and m) stay zero: a non-finite state (inf * the padded weights'
        # zeros is NaN there) must not reach the next product
        if PROJ:
            hn = mm(tl.where(hlanes, hn, 0.0).to(w_ptr.dtype.element_ty), wr, PREC)
        h = tl.where(v & planes, hn, h)
        c = tl.where(v, cn, c)
        if CELL == 4:
            n = tl.where(v, nn, n)
            m = tl.where(v, mn, m)
        store_tile(y_ptr, seq_offsets(tt, rows, B, P, d, D), pcols, tl.where(v, h, 0.0), mask_p)
        if S > 0:
            if gx_blocks == S:  # this forward saves (S > G for every cell that saves)
                store_blocks(ws_ptr, go, eo, hcols, H, mask_h, v, G, S - G, s0, s1, s2, s3, se, nn,
                             mn)
    store_tile(hn_ptr, (d * B + rows) * P, pcols, h, mask_p)
    if CELL == 0 or CELL == 4:
        store_tile(cn_ptr, state_offsets(CELL, d, 0, rows, B, H), hcols, c, mask_h)
    if CELL == 4:
        store_tile(cn_ptr, state_offsets(CELL, d, 1, rows, B, H), hcols, n, mask_h)
        store_tile(cn_ptr, state_offsets(CELL, d, 2, rows, B, H), hcols, m, mask_h)


@triton.jit(do_not_specialize=NOT_SPECIALIZED + ["dgx_blocks", "zoneout"])
def resident_backward_kernel(
    dy_ptr,  # (T, B, D*P) gradient of the output
    dhn_ptr,  # (D, B, P) gradient of the final hidden state
    dcn_ptr,  # (D, C, B, H) gradients of the final cell states (common.CELL_STATES)
    w_ptr,  # (D, G*H, P) W_hh
    wr_ptr,  # (D, P, H) W_hr when PROJ
    h0_ptr,  # (D, B, P) initial hidden state (GRU reads it)
    c0_ptr,  # (D, C, B, H) initial cell states (LSTM, sLSTM read them)
    y_ptr,  # (T, B, D*P) forward output
    ws_ptr,  # (T, B, D*S*H) values saved by the forward (an RNN passes y, S = 1, or under
             # zoneout its h before zoneout)
    kh_ptr, kc_ptr,  # zoneout's keep values of h and (LSTM) c (see keep_tile), when zoneout
    len_ptr,  # (B,) int32 sequence lengths (T each when none were given)
    dgx_ptr,  # (T, B, D*dgx_blocks*H) out: gate pre-activation gradients (zero past each
              # length) and store_grads' extra block; may be ws itself (common.block_offsets)
    dh0_ptr,  # (D, B, P) out: gradient of h0
    dc0_ptr,  # (D, C, B, H) out: gradients of the initial cell states
    dhs_ptr,  # (T, B, D*P) out when PROJ: total gradient of each step's h (for dW_hr)
    T, B, H, P,  # steps, batch, hidden size, output size
    relu,  # Elman RNN: 1 for relu, 0 for tanh
    D,  # directions in this launch: 1, or 2 (grid axis 2)
    reverse,  # 1: direction 0 runs (ran) from each sequence's last step back
    dgx_blocks,  # blocks of H per direction in dgx's rows: S when it is ws, else grad_blocks
    zoneout,  # the forward's zoneout code (keep_tile; no projection)
    CELL: tl.constexpr,  # cell code
    G: tl.constexpr,  # gates per cell
    S: tl.constexpr,  # saved tiles per step in ws
    BLOCK_B: tl.constexpr,  # batch rows per program
    BLOCK_H: tl.constexpr,  # power of two >= H
    BLOCK_P: tl.constexpr,  # power of two >= P
    PROJ: tl.constexpr,  # LSTM with projection
    PREC: tl.constexpr,  # tl.dot input precision
):
    d, rev = direction(reverse)
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    hcols = tl.arange(0, BLOCK_H)
    pcols = tl.arange(0, BLOCK_P)
    rmask, mask_h, mask_p, lens = tile_masks(rows, hcols, pcols, B, H, P, len_ptr)
    hlanes, planes = (hcols < H)[None, :], (pcols < P)[None, :]
    # W_hh per gate, [BLOCK_H, BLOCK_P]
    w0, w1, w2, w3 = gate_weights(w_ptr, d * G, hcols, pcols, H, P, G, False)
    if PROJ:
        wr = load_w(wr_ptr, d, pcols, hcols, P, H, False)  # W_hr: [BLOCK_P, BLOCK_H]
    dh = load_tile(dhn_ptr, (d * B + rows) * P, pcols, mask_p)
    dc = tl.zeros([BLOCK_B, BLOCK_H], dtype=tl.float32)
    dn, dst = dc, dc  # the sLSTM's n and m (stabiliser)
    if CELL == 0 or CELL == 4:
        dc = load_tile(dcn_ptr, state_offsets(CELL, d, 0, rows, B, H), hcols, mask_h)
    if CELL == 4:
        dn = load_tile(dcn_ptr, state_offsets(CELL, d, 1, rows, B, H), hcols, mask_h)
        dst = load_tile(dcn_ptr, state_offsets(CELL, d, 2, rows, B, H), hcols, mask_h)
    for i in range(T):
        if PROJ:
            # store_grads writes m over this step's c, which the step before (in this loop)
            # read as its previous c, maybe in other warps: wait for them
            tl.debug_barrier()
        tt, valid = step_rows(T - 1 - i, lens, rev)
        v = valid[:, None]
        dh += load_tile(dy_ptr, seq_offsets(tt, rows, B, P, d, D), pcols, mask_p & v)
        dm = dh
        if PROJ:
            store_tile(dhs_ptr, seq_offsets(tt, rows, B, P, d, D), pcols, tl.where(v, dh, 0.0), mask_p)
            dm = tl.where(hlanes, mm(dh.to(w_ptr.dtype.element_ty), wr, PREC), 0.0)
        go, eo = block_offsets(tt, rows, B, H, d, D, G, S)
        s0, s1, s2, s3, se, se1, se2 = load_saved(ws_ptr, go, eo, hcols, H, mask_h & v, G, S)
        prev, prev_n, prev_m = dm, dm, dm
        if CELL != 2:
            prev, prev_n, prev_m = load_prev_state(CELL, ws_ptr, y_ptr, h0_ptr, c0_ptr, tt, lens,
                                                   rows, B, H, hcols, mask_h & v, G, S, rev, d, D)
        dc_cell = dc
        if not PROJ:
            dm, dc_cell = zoneout_backward(CELL, zoneout, kh_ptr, kc_ptr, tt, rows, B, P, d, D,
                                           hcols, mask_h & v, dm, dc)
        d0, d1, d2, d3, r0, r1, r2, r3, dhd, dcp, dnp, dsp = cell_backward(
            CELL, dm, dc_cell, dn, dst, s0, s1, s2, s3, se, se1, se2, prev, prev_n, prev_m, relu)
        go, eo = block_offsets(tt, rows, B, H, d, D, G, dgx_blocks)
        store_grads(dgx_ptr, go, eo, hcols, H, mask_h, v, CELL, G, PROJ, d0, d1, d2, d3, r2, s3, se)
        dt = w_ptr.dtype.element_ty
        dhn = mm(r0.to(dt), w0, PREC)
        if G > 1:
            dhn += mm(r1.to(dt), w1, PREC) + mm(r2.to(dt), w2, PREC)
        if G > 3:
            dhn += mm(r3.to(dt), w3, PREC)
        if CELL == 1:
            dhn += dhd
        if not PROJ:
            dhn, dcp = zoneout_carry(CELL, zoneout, kh_ptr, kc_ptr, tt, rows, B, P, d, D, hcols,
                                     mask_h & v, dh, dc, dhn, dcp)
        # padded lanes stay zero (see the forward): dm, dc and so every gate gradient there too
        dh = tl.where(v & planes, dhn, dh)
        dc = tl.where(v, dcp, dc)
        if CELL == 4:
            dn = tl.where(v, dnp, dn)
            dst = tl.where(v, dsp, dst)
    store_tile(dh0_ptr, (d * B + rows) * P, pcols, dh, mask_p)
    if CELL == 0 or CELL == 4:
        store_tile(dc0_ptr, state_offsets(CELL, d, 0, rows, B, H), hcols, dc, mask_h)
    if CELL == 4:
        store_tile(dc0_ptr, state_offsets(CELL, d, 1, rows, B, H), hcols, dn, mask_h)
        store_tile(dc0_ptr, state_offsets(CELL, d, 2, rows, B, H), hcols, dst, mask_h)
