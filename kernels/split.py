"""The *split* time-loop kernels: programs own ``BLOCK_H`` units of batch tiles' state.

Tiles: batch tiles of ``BLOCK_B`` rows x slices of ``BLOCK_H`` hidden (or output) units.
Every step streams W_hh (and W_hr) from L2 in ``BLOCK_K`` chunks of the reduction dimension,
or (``W_ON_CHIP``, no projection) uses the program's W_hh slice loaded once before the phase
loop, and exchanges the state through float32 global buffers, so the work of a step is divided
into *phases* separated by a grid-wide synchronisation: either a grid barrier (``barrier``:
all phases in one launch, every program resident; GPU only, or a grid of one program) or the
end of a launch (one phase per launch, looped from Python: W_hh on chip in more programs than
the GPU runs at once, which the launchers avoid on a GPU, or several programs in the
interpreter). Streaming programs run tiles ``p, p + n, ...`` of every phase (``tile``), so a
grid of fewer programs than tiles, which the launcher's ``_grid`` cuts to the SMs, covers
them all; programs with W_hh on chip own one tile (a loop around their products spills).

Phases, numbered ``q`` from 0 in running order; a launch runs ``q_begin .. q_end-1``:

- forward, no projection: phase ``s`` is step ``s`` (gates from h, new h and c of the slice).
- forward with a projection (LSTM, ``h = W_hr m``, ``m = o * tanh(c)``): phase ``2s`` computes
  the gates and m of a hidden slice into ``mbuf``; phase ``2s+1`` projects all of m onto a
  slice of the P outputs.
- backward, no projection: phase ``q`` is step ``s = T-1-q``, down to ``s = -1``, which only
  adds step 0's recurrent gradient into dh (leaving dh0).
- backward with a projection: phase ``2q`` gathers the total gradient of h (P wide) of step
  ``s = T-1-q`` from dy, the carry and the recurrent gradients of step s+1; phase ``2q+1``
  brings it back through W_hr onto a hidden slice and runs the cell's backward there.
"""

import triton
import triton.language as tl
from fastrnn.kernels.common import (
    NOT_SPECIALIZED,
    block_offsets,
    direction,
    gate_weights,
    grid_barrier,
    load_tile,
    load_w,
    mm,
    seq_offsets,
    step_rows,
    store_tile,
    tile_masks,
)
from fastrnn.kernels.recurrence import (
    cell_backward,
    cell_forward,
    load_prev_state,
    load_saved,
    store_blocks,
    store_grads,
    zoneout_backward,
    zoneout_carry,
    zoneout_forward,
)


@triton.jit
def gru_bhn(CELL: tl.constexpr, bhn_ptr, d, cols, H, BLOCK_H: tl.constexpr):
    """The GRU's b_hn of columns ``cols`` in float32 (zeros for the other cells)."""
    if CELL == 1:
        return tl.load(bhn_ptr + d * H + cols, mask=cols < H, other=0.0).to(tl.float32)
    return tl.zeros([BLOCK_H], dtype=tl.float32)


@triton.jit
def tile(i, j, B, H, P, len_ptr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """Rows and columns of the tile of batch tile ``i`` and slice ``j``, its masks and lengths
    (``tile_masks``). A streaming program ``p = program_id(0) * num_programs(1) +
    program_id(1)`` of ``n`` runs tiles ``t = p, p + n, ...`` of each phase in one flat loop,
    ``(i, j) = divmod(t, slices)`` (nested loops over batch tiles and slices spill); a program
    with W_hh on chip runs its own tile, ``(program_id(0), program_id(1))``."""
    rows = i * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = j * BLOCK_H + tl.arange(0, BLOCK_H)
    rmask, mask_h, mask_p, lens = tile_masks(rows, cols, cols, B, H, P, len_ptr)
    return rows, cols, rmask, mask_h, mask_p, lens


@triton.jit
def add_mm(acc, a_ptr, a_width, rows, rmask, kc, K, w, PREC: tl.constexpr):
    """``acc + A[rows, kc] @ w``, A (float32 or the weights' dtype) with row stride ``a_width``,
    zero at ``kc >= K``; ``w`` is a ``[kc, cols]`` tile in the weights' dtype."""
    a = load_tile(a_ptr, rows * a_width, kc, rmask[:, None] & (kc < K)[None, :])
    return acc + mm(a.to(w.dtype), w, PREC)


@triton.jit
def stream_mm(acc, a_ptr, a_width, rows, rmask, w_ptr, gate, w_rows, w_cols, cols, K,
              TRANS: tl.constexpr, BLOCK_K: tl.constexpr, PREC: tl.constexpr):
    """``acc + A[rows, :K] @ M[:K, cols]`` streamed in BLOCK_K chunks, A (see ``add_mm``) with
    row stride ``a_width``; M is ``W_gate^T`` (TRANS) or ``W_gate`` of ``W: (G*w_rows, w_cols)``."""
    kcols = tl.arange(0, BLOCK_K)
    for k0 in range(0, K, BLOCK_K):
        kc = k0 + kcols
        if TRANS:
            w = load_w(w_ptr, gate, cols, kc, w_rows, w_cols, True)
        else:
            w = load_w(w_ptr, gate, kc, cols, w_rows, w_cols, False)
        acc = add_mm(acc, a_ptr, a_width, rows, rmask, kc, K, w, PREC)
    return acc


@triton.jit
def chip_weights(w_ptr, g0, cols, H, P, G: tl.constexpr, BLOCK_H: tl.constexpr,
                 BLOCK_K: tl.constexpr, TRANS: tl.constexpr, W_ON_CHIP: tl.constexpr,
                 VECTOR: tl.constexpr = False):
    """This program's slice of W_hh for the whole time loop when W_ON_CHIP: ``W_k^T[:, cols]``
    (TRANS, forward) or ``W_k[:, cols]`` (backward) of gates ``g0 ..``, the reduction padded to
    BLOCK_K; ``W_k[cols, :]`` (``[BLOCK_H, BLOCK_K]``) for VECTOR products; otherwise unused
    placeholders."""
    if VECTOR:
        w0, w1, w2, w3 = gate_weights(w_ptr, g0, cols, tl.arange(0, BLOCK_K), H, P, G, False)
    elif W_ON_CHIP:
        kc = tl.arange(0, BLOCK_K)
        if TRANS:
            w0, w1, w2, w3 = gate_weights(w_ptr, g0, cols, kc, H, P, G, True)
        else:
            w0, w1, w2, w3 = gate_weights(w_ptr, g0, kc, cols, H, P, G, False)
    else:
        w0 = tl.zeros([BLOCK_K, BLOCK_H], dtype=w_ptr.dtype.element_ty)
        w1, w2, w3 = w0, w0, w0
    return w0, w1, w2, w3


@triton.jit
def add_gate(acc, hq, w_ptr, w, gate, cols, kc, H, P, W_ON_CHIP: tl.constexpr,
             PREC: tl.constexpr, VECTOR: tl.constexpr):
    """``acc + hq @ W_gate^T[kc, cols]``: ``w`` is that chunk when W_ON_CHIP, else loaded.
    VECTOR: one row ``hq: [1, K]`` and ``w = W_gate[cols, kc]``, multiplied and summed in
    float32 on the CUDA cores (one real row would fill a sixteenth of a tensor-core tile)."""
    if VECTOR:
        acc += tl.sum(w.to(tl.float32) * hq.to(tl.float32), axis=1)[None, :]
    elif W_ON_CHIP:
        acc += mm(hq, w, PREC)
    else:
        acc += mm(hq, load_w(w_ptr, gate, cols, kc, H, P, True), PREC)
    return acc


@triton.jit
def stream_gates(h_ptr, rows, rmask, w_ptr, g0, w0, w1, w2, w3, cols, H, P, G: tl.constexpr,
                 BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                 W_ON_CHIP: tl.constexpr, PREC: tl.constexpr, VECTOR: tl.constexpr):
    """The recurrent pre-activations ``h[rows] @ W_k^T[:, cols]`` (h: (n, P)) of gates ``g0 ..``,
    each chunk of h loaded once for all gates; the weights are ``w0 .. w3`` (W_ON_CHIP: one
    chunk covers P) or streamed; VECTOR: see ``add_gate``."""
    kcols = tl.arange(0, BLOCK_K)
    a0 = tl.zeros([BLOCK_B, BLOCK_H], dtype=tl.float32)
    a1, a2, a3 = a0, a0, a0
    for k0 in range(0, P, BLOCK_K):
        kc = k0 + kcols
        hq = load_tile(h_ptr, rows * P, kc, rmask[:, None] & (kc < P)[None, :])
        hq = hq.to(w_ptr.dtype.element_ty)
        a0 = add_gate(a0, hq, w_ptr, w0, g0, cols, kc, H, P, W_ON_CHIP, PREC, VECTOR)
        if G > 1:
            a1 = add_gate(a1, hq, w_ptr, w1, g0 + 1, cols, kc, H, P, W_ON_CHIP, PREC, VECTOR)
            a2 = add_gate(a2, hq, w_ptr, w2, g0 + 2, cols, kc, H, P, W_ON_CHIP, PREC, VECTOR)
        if G > 3:
            a3 = add_gate(a3, hq, w_ptr, w3, g0 + 3, cols, kc, H, P, W_ON_CHIP, PREC, VECTOR)
    return a0, a1, a2, a3


@triton.jit
def forward_tile(rows, cols, rmask, mask_h, mask_p, lens, s, project, h_rd, h_wr, d, rev, w0, w1,
                 w2, w3, gx_ptr, w_ptr, wr_ptr, bhn, y_ptr, ws_ptr, kh_ptr, kc_ptr, cbuf_ptr,
                 mbuf_ptr, B, H, P, relu, D, gx_blocks, zoneout, CELL: tl.constexpr,
                 G: tl.constexpr, S: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                 BLOCK_K: tl.constexpr, PROJ: tl.constexpr, W_ON_CHIP: tl.constexpr,
                 PREC: tl.constexpr, VECTOR: tl.constexpr):
    """Step ``s`` of ``split_forward_kernel`` on one tile (``tile``'s rows, columns, masks and
    lengths): a projection phase (``project``) or the gates' (arguments as the kernel's)."""
    projecting = False
    if PROJ:
        projecting = project
    tt, valid = step_rows(s, lens, rev)
    v = valid[:, None]
    if projecting:
        hn = stream_mm(tl.zeros([BLOCK_B, BLOCK_H], dtype=tl.float32), mbuf_ptr, H, rows,
                       rmask, wr_ptr, d, P, H, cols, H, True, BLOCK_K, PREC)
        hn = tl.where(v, hn, load_tile(h_rd, rows * P, cols, mask_p))
        store_tile(h_wr, rows * P, cols, hn, mask_p)
        store_tile(y_ptr, seq_offsets(tt, rows, B, P, d, D), cols, tl.where(v, hn, 0.0), mask_p)
    else:
        a0, a1, a2, a3 = stream_gates(h_rd, rows, rmask, w_ptr, d * G, w0, w1, w2, w3,
                                      cols, H, P, G, BLOCK_B, BLOCK_H, BLOCK_K, W_ON_CHIP,
                                      PREC, VECTOR)
        hprev = tl.zeros([BLOCK_B, BLOCK_H], dtype=tl.float32)  # unread with a projection
        if not PROJ:
            hprev = load_tile(h_rd, rows * P, cols, mask_h)
        c = hprev
        n, m = c, c
        if CELL == 0 or CELL == 4:
            c = load_tile(cbuf_ptr, rows * H, cols, mask_h)
        if CELL == 4:
            n = load_tile(cbuf_ptr + B * H, rows * H, cols, mask_h)
            m = load_tile(cbuf_ptr + 2 * B * H, rows * H, cols, mask_h)
        go, eo = block_offsets(tt, rows, B, H, d, D, G, gx_blocks)
        hn, cn, nn, mn, s0, s1, s2, s3, se = cell_forward(CELL, gx_ptr, go, cols, H, mask_h, a0,
                                                          a1, a2, a3, hprev, c, n, m, bhn, relu)
        if PROJ:
            store_tile(mbuf_ptr, rows * H, cols, tl.where(v, hn, 0.0), mask_h)
        else:
            if CELL == 2:
                if zoneout == 2:  # an RNN's backward needs its h before zoneout
                    store_tile(ws_ptr, seq_offsets(tt, rows, B, H, d, D), cols,
                               tl.where(v, hn, 0.0), mask_h)
            hn, cn = zoneout_forward(CELL, zoneout, kh_ptr, kc_ptr, tt, rows, B, P, d, D,
                                     cols, mask_h & v, hprev, c, hn, cn)
            if CELL == 0:
                se = cn  # the LSTM saves its state c (after zoneout)
            hn = tl.where(v, hn, hprev)
            store_tile(h_wr, rows * P, cols, hn, mask_h)
            store_tile(y_ptr, seq_offsets(tt, rows, B, P, d, D), cols, tl.where(v, hn, 0.0), mask_h)
        if CELL == 0 or CELL == 4:
            store_tile(cbuf_ptr, rows * H, cols, tl.where(v, cn, c), mask_h)
        if CELL == 4:
            store_tile(cbuf_ptr + B * H, rows * H, cols, tl.where(v, nn, n), mask_h)
            store_tile(cbuf_ptr + 2 * B * H, rows * H, cols, tl.where(v, mn, m), mask_h)
        if S > 0:
            if gx_blocks == S:  # this forward saves (S > G for every cell that saves)
                store_blocks(ws_ptr, go, eo, cols, H, mask_h, v, G, S - G, s0, s1, s2, s3,
                             se, nn, mn)


@triton.jit(do_not_specialize=NOT_SPECIALIZED + ["gx_blocks", "zoneout", "barrier", "q_begin",
                                                  "q_end"])
def split_forward_kernel(
    gx_ptr,  # (T, B, D*gx_blocks*H) input projection, biases folded in (GRU: all but b_hn);
             # when the forward saves, ws itself, the projection in its gate blocks
    w_ptr,  # (D, G*H, P) W_hh; its dtype is the tl.dot operand dtype
    wr_ptr,  # (D, P, H) W_hr when PROJ
    bhn_ptr,  # (D, H) GRU b_hn (zeros without biases)
    len_ptr,  # (B,) int32 sequence lengths (T each when none were given)
    y_ptr,  # (T, B, D*P) output: h of every step, zero past each length
    ws_ptr,  # (T, B, D*S*H) values saved for backward when gx_blocks == S (common.SAVED);
             # an Elman RNN under zoneout (code 2): (T, B, D*H) its h before zoneout
    kh_ptr, kc_ptr,  # zoneout's keep values of h and (LSTM) c (recurrence.keep_tile)
    hbuf_ptr,  # (D, 2, B, P) float32: step s reads h from slot (s+1)%2, writes slot s%2
    cbuf_ptr,  # (D, C, B, H) float32 cell states (common.CELL_STATES), updated in place
    mbuf_ptr,  # (D, B, H) float32 m = o * tanh(c) of the current step when PROJ
    bar_ptr,  # int32 arrival counter of the grid barrier, zero at launch (when barrier)
    T, B, H, P,  # steps, batch, hidden size, output size (P = proj size or H)
    relu,  # Elman RNN: 1 for relu, 0 for tanh
    D,  # directions in this launch: 1, or 2 (grid axis 2)
    reverse,  # 1: direction 0 runs (ran) from each sequence's last step back
    gx_blocks,  # blocks of H per direction in gx's rows: S when the forward saves, else G
    zoneout,  # 0: none; 1: zoneout (keep_tile's masks); 2: also the RNN saves its h before
    barrier,  # 1: a grid barrier after each phase (all programs resident), 0: one phase
    q_begin, q_end,  # this launch runs phases q_begin .. q_end-1 (see the module docstring)
    CELL: tl.constexpr,  # cell code
    G: tl.constexpr,  # gates per cell
    S: tl.constexpr,  # saved tiles per step of ws (0: the cell saves none, see SAVED)
    BLOCK_B: tl.constexpr,  # batch rows per program
    BLOCK_H: tl.constexpr,  # hidden (projection phase: output) units per program
    BLOCK_K: tl.constexpr,  # reduction chunk of the streamed products (W_ON_CHIP: all of P)
    PROJ: tl.constexpr,  # LSTM projection h = W_hr (o * tanh(c)): two phases per step
    W_ON_CHIP: tl.constexpr,  # W_hh slice loaded once per launch, not streamed (no PROJ)
    PREC: tl.constexpr,  # tl.dot input precision
    VECTOR: tl.constexpr,  # one batch row per program (BLOCK_B = 1), W_ON_CHIP, see add_gate
):
    d, rev = direction(reverse)
    rows, cols, rmask, mask_h, mask_p, lens = tile(  # the program's own tile (W_ON_CHIP)
        tl.program_id(0), tl.program_id(1), B, H, P, len_ptr, BLOCK_B, BLOCK_H)
    bhn = gru_bhn(CELL, bhn_ptr, d, cols, H, BLOCK_H)
    w0, w1, w2, w3 = chip_weights(w_ptr, d * G, cols, H, P, G, BLOCK_H, BLOCK_K, True, W_ON_CHIP,
                                  VECTOR)
    cbuf_ptr += d * B * H  # this direction's state buffers (the sLSTM's three: CELL_STATES)
    if CELL == 4:
        cbuf_ptr += d * 2 * B * H
    mbuf_ptr += d * B * H
    nprog = tl.num_programs(0) * tl.num_programs(1) * D
    for q in range(q_begin, q_end):
        s = q
        project = False
        if PROJ:
            s = q // 2
            project = q % 2 == 1
        h_rd = hbuf_ptr + (2 * d + (s + 1) % 2) * B * P
        h_wr = hbuf_ptr + (2 * d + s % 2) * B * P
        slices = tl.cdiv(H, BLOCK_H)
        if project:  # the phase's slices are of the P outputs
            slices = tl.cdiv(P, BLOCK_H)
        if W_ON_CHIP:  # the program's own tile (its slice on chip)
            forward_tile(rows, cols, rmask, mask_h, mask_p, lens, s, project, h_rd, h_wr, d, rev,
                         w0, w1, w2, w3, gx_ptr, w_ptr, wr_ptr, bhn, y_ptr, ws_ptr, kh_ptr,
                         kc_ptr, cbuf_ptr, mbuf_ptr, B, H, P, relu, D, gx_blocks, zoneout, CELL, G,
                         S, BLOCK_B, BLOCK_H, BLOCK_K, PROJ, W_ON_CHIP, PREC, VECTOR)
        else:
            for t in range(tl.program_id(0) * tl.num_programs(1) + tl.program_id(1),
                           tl.cdiv(B, BLOCK_B) * slices, tl.num_programs(0) * tl.num_programs(1)):
                rows, cols, rmask, mask_h, mask_p, lens = tile(t // slices, t % slices, B, H,
                                                               P, len_ptr, BLOCK_B, BLOCK_H)
                forward_tile(rows, cols, rmask, mask_h, mask_p, lens, s, project, h_rd, h_wr, d,
                             rev, w0, w1, w2, w3, gx_ptr, w_ptr, wr_ptr,
                             gru_bhn(CELL, bhn_ptr, d, cols, H, BLOCK_H), y_ptr, ws_ptr,
                             kh_ptr, kc_ptr, cbuf_ptr, mbuf_ptr, B, H, P, relu, D, gx_blocks,
                             zoneout, CELL, G, S, BLOCK_B, BLOCK_H, BLOCK_K, PROJ, W_ON_CHIP, PREC,
                             VECTOR)
        if barrier:
            grid_barrier(bar_ptr, (q - q_begin + 1) * nprog)


@triton.jit
def gate_dh(dh, r_ptr, k, rows, rmask, w_ptr, gate, w, cols, H, P, G: tl.constexpr,
            BLOCK_K: tl.constexpr, W_ON_CHIP: tl.constexpr, PREC: tl.constexpr):
    """``dh + R_k[rows] @ W_gate[:, cols]`` (R: (n, G*H), its gate k in columns k*H ..): ``w``
    is that slice of W when W_ON_CHIP, else streamed."""
    if W_ON_CHIP:
        dh = add_mm(dh, r_ptr + k * H, G * H, rows, rmask, tl.arange(0, BLOCK_K), H, w, PREC)
    else:
        dh = stream_mm(dh, r_ptr + k * H, G * H, rows, rmask, w_ptr, gate, H, P, cols, H, False,
                       BLOCK_K, PREC)
    return dh


@triton.jit
def gather_dh(dh, r_ptr, rows, rmask, w_ptr, g0, w0, w1, w2, w3, cols, H, P, G: tl.constexpr,
              BLOCK_K: tl.constexpr, W_ON_CHIP: tl.constexpr, PREC: tl.constexpr):
    """``dh + sum_k R_k[rows] @ W_{g0+k}[:, cols]``: the gradient reaching h through W_hh from
    the recurrent gate gradients ``R: (n, G*H)`` of the step after (``w_k``: see ``gate_dh``)."""
    dh = gate_dh(dh, r_ptr, 0, rows, rmask, w_ptr, g0, w0, cols, H, P, G, BLOCK_K, W_ON_CHIP, PREC)
    if G > 1:
        dh = gate_dh(dh, r_ptr, 1, rows, rmask, w_ptr, g0 + 1, w1, cols, H, P, G, BLOCK_K,
                     W_ON_CHIP, PREC)
        dh = gate_dh(dh, r_ptr, 2, rows, rmask, w_ptr, g0 + 2, w2, cols, H, P, G, BLOCK_K,
                     W_ON_CHIP, PREC)
    if G > 3:
        dh = gate_dh(dh, r_ptr, 3, rows, rmask, w_ptr, g0 + 3, w3, cols, H, P, G, BLOCK_K,
                     W_ON_CHIP, PREC)
    return dh


@triton.jit
def backward_tile(rows, cols, rmask, mask_h, mask_p, lens, s, gather, r_rd, d, rev, w0, w1, w2, w3,
                  dy_ptr, w_ptr, wr_ptr, h0_ptr, c0_ptr, y_ptr, ws_ptr, kh_ptr, kc_ptr, dgx_ptr,
                  dhs_ptr, dhbuf_ptr, dcbuf_ptr, rbuf_ptr, B, H, P, relu, D, dgx_blocks, zoneout,
                  CELL: tl.constexpr, G: tl.constexpr, S: tl.constexpr, BLOCK_B: tl.constexpr,
                  BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PROJ: tl.constexpr,
                  W_ON_CHIP: tl.constexpr, PREC: tl.constexpr):
    """Step ``s`` of ``split_backward_kernel`` on one tile (``tile``'s rows, columns, masks and
    lengths): a gathering phase (``gather``) or the cell's backward (arguments as the
    kernel's)."""
    gathering = False
    if PROJ:
        gathering = gather
    tt, valid = step_rows(s, lens, rev)
    v = valid[:, None]
    if gathering:  # the total gradient of h at step s, P wide (LSTM: h feeds no gate directly)
        dh = load_tile(dhbuf_ptr, rows * P, cols, mask_p)
        _, valid_next = step_rows(s + 1, lens, rev)
        dh = gather_dh(tl.where(valid_next[:, None], 0.0, dh), r_rd, rows, rmask,
                       w_ptr, d * G, w0, w1, w2, w3, cols, H, P, G, BLOCK_K, W_ON_CHIP,
                       PREC)
        if s >= 0:
            dh += load_tile(dy_ptr, seq_offsets(tt, rows, B, P, d, D), cols, mask_p & v)
            store_tile(dhs_ptr, seq_offsets(tt, rows, B, P, d, D), cols, tl.where(v, dh, 0.0),
                       mask_p)
        store_tile(dhbuf_ptr, rows * P, cols, dh, mask_p)
    else:
        if PROJ:  # dm = dh W_hr on this hidden slice
            dh = stream_mm(tl.zeros([BLOCK_B, BLOCK_H], dtype=tl.float32), dhbuf_ptr, P, rows,
                           rmask, wr_ptr, d, P, H, cols, P, False, BLOCK_K, PREC)
        else:
            dh = gather_dh(load_tile(dhbuf_ptr, rows * H, cols, mask_h), r_rd, rows, rmask,
                           w_ptr, d * G, w0, w1, w2, w3, cols, H, H, G, BLOCK_K, W_ON_CHIP,
                           PREC)
            if s >= 0:
                dh += load_tile(dy_ptr, seq_offsets(tt, rows, B, H, d, D), cols, mask_h & v)
        if s >= 0:
            dc = dh
            dn, dst = dc, dc  # the sLSTM's n and m (stabiliser)
            if CELL == 0 or CELL == 4:
                dc = load_tile(dcbuf_ptr, rows * H, cols, mask_h)
            if CELL == 4:
                dn = load_tile(dcbuf_ptr + B * H, rows * H, cols, mask_h)
                dst = load_tile(dcbuf_ptr + 2 * B * H, rows * H, cols, mask_h)
            go, eo = block_offsets(tt, rows, B, H, d, D, G, S)
            s0, s1, s2, s3, se, se1, se2 = load_saved(ws_ptr, go, eo, cols, H, mask_h & v, G, S)
            prev, prev_n, prev_m = dh, dh, dh
            if CELL != 2:
                prev, prev_n, prev_m = load_prev_state(CELL, ws_ptr, y_ptr, h0_ptr, c0_ptr, tt,
                                                       lens, rows, B, H, cols, mask_h & v, G,
                                                       S, rev, d, D)
            dh_cell, dc_cell = dh, dc
            if not PROJ:
                dh_cell, dc_cell = zoneout_backward(CELL, zoneout, kh_ptr, kc_ptr, tt, rows, B,
                                                    H, d, D, cols, mask_h & v, dh, dc)
            d0, d1, d2, d3, r0, r1, r2, r3, dhd, dcp, dnp, dsp = cell_backward(
                CELL, dh_cell, dc_cell, dn, dst, s0, s1, s2, s3, se, se1, se2, prev, prev_n,
                prev_m, relu)
            go, eo = block_offsets(tt, rows, B, H, d, D, G, dgx_blocks)
            store_grads(dgx_ptr, go, eo, cols, H, mask_h, v, CELL, G, PROJ, d0, d1, d2, d3, r2,
                        s3, se)
            store_blocks(rbuf_ptr + (2 * d + s % 2) * B * G * H, rows * G * H, 0, cols, H,
                         mask_h, v, G, 0, r0, r1, r2, r3, r0, r0, r0)
            if not PROJ:
                carry = tl.zeros_like(d0)
                if CELL == 1:
                    carry = dhd
                carry, dcp = zoneout_carry(CELL, zoneout, kh_ptr, kc_ptr, tt, rows, B, H, d, D,
                                           cols, mask_h & v, dh, dc, carry, dcp)
                store_tile(dhbuf_ptr, rows * H, cols, tl.where(v, carry, dh), mask_h)
            if CELL == 0 or CELL == 4:
                store_tile(dcbuf_ptr, rows * H, cols, tl.where(v, dcp, dc), mask_h)
            if CELL == 4:
                store_tile(dcbuf_ptr + B * H, rows * H, cols, tl.where(v, dnp, dn), mask_h)
                store_tile(dcbuf_ptr + 2 * B * H, rows * H, cols, tl.where(v, dsp, dst), mask_h)
        else:
            store_tile(dhbuf_ptr, rows * H, cols, dh, mask_h)


@triton.jit(do_not_specialize=NOT_SPECIALIZED + ["dgx_blocks", "zoneout", "barrier", "q_begin",
                                                  "q_end"])
def split_backward_kernel(
    dy_ptr,  # (T, B, D*P) gradient of the output
    w_ptr,  # (D, G*H, P) W_hh
    wr_ptr,  # (D, P, H) W_hr when PROJ
    h0_ptr,  # (D, B, H) initial hidden state (GRU reads it)
    c0_ptr,  # (D, C, B, H) initial cell states (LSTM, sLSTM read them)
    y_ptr,  # (T, B, D*P) forward output
    ws_ptr,  # (T, B, D*S*H) values saved by the forward (an RNN passes y, S = 1, or under
             # zoneout its h before zoneout)
    kh_ptr, kc_ptr,  # zoneout's keep values of h and (LSTM) c (recurrence.keep_tile)
    len_ptr,  # (B,) int32 sequence lengths (T each when none were given)
    dgx_ptr,  # (T, B, D*dgx_blocks*H) out: gate pre-activation gradients (zero past each
              # length) and store_grads' extra block; may be ws itself (common.block_offsets)
    dhs_ptr,  # (T, B, D*P) out when PROJ: total gradient of each step's h (for dW_hr)
    dhbuf_ptr,  # (D, B, P) float32 dh carried between steps (starts as dh_n, ends as dh0)
    dcbuf_ptr,  # (D, C, B, H) float32 gradients of the cell states carried between steps
                # (start as those of the final states, end as those of the initial ones)
    rbuf_ptr,  # (D, 2, B, G*H) recurrent gradients of step s in slot s%2 (slot T%2 zero), in
               # W_hh's dtype: they are only ever the operand of the product with W_hh
    bar_ptr,  # int32 arrival counter of the grid barrier, zero at launch (when barrier)
    T, B, H, P,  # steps, batch, hidden size, output size
    relu,  # Elman RNN: 1 for relu, 0 for tanh
    D,  # directions in this launch: 1, or 2 (grid axis 2)
    reverse,  # 1: direction 0 runs (ran) from each sequence's last step back
    dgx_blocks,  # blocks of H per direction in dgx's rows: S when it is ws, else grad_blocks
    zoneout,  # the forward's zoneout code (keep_tile; no projection)
    barrier,  # 1: a grid barrier after each phase (all programs resident), 0: one phase
    q_begin, q_end,  # this launch runs phases q_begin .. q_end-1 (see the module docstring)
    CELL: tl.constexpr,  # cell code
    G: tl.constexpr,  # gates per cell
    S: tl.constexpr,  # saved tiles per step in ws
    BLOCK_B: tl.constexpr,  # batch rows per program
    BLOCK_H: tl.constexpr,  # hidden (gathering phase: output) units per program
    BLOCK_K: tl.constexpr,  # reduction chunk of the streamed products (W_ON_CHIP: all of H)
    PROJ: tl.constexpr,  # LSTM with projection: two phases per step
    W_ON_CHIP: tl.constexpr,  # W_hh slice loaded once per launch, not streamed (no PROJ)
    PREC: tl.constexpr,  # tl.dot input precision
):
    d, rev = direction(reverse)
    rows, cols, rmask, mask_h, mask_p, lens = tile(  # the program's own tile (W_ON_CHIP)
        tl.program_id(0), tl.program_id(1), B, H, P, len_ptr, BLOCK_B, BLOCK_H)
    w0, w1, w2, w3 = chip_weights(w_ptr, d * G, cols, H, P, G, BLOCK_H, BLOCK_K, False, W_ON_CHIP)
    dhbuf_ptr += d * B * P  # this direction's state buffers (the sLSTM's three: CELL_STATES)
    dcbuf_ptr += d * B * H
    if CELL == 4:
        dcbuf_ptr += d * 2 * B * H
    nprog = tl.num_programs(0) * tl.num_programs(1) * D
    for q in range(q_begin, q_end):
        s = T - 1 - q
        gather = False
        if PROJ:
            s = T - 1 - q // 2
            gather = q % 2 == 0
        r_rd = rbuf_ptr + (2 * d + (s + 1) % 2) * B * G * H
        slices = tl.cdiv(H, BLOCK_H)
        if gather:  # the phase's slices are of the P outputs
            slices = tl.cdiv(P, BLOCK_H)
        if W_ON_CHIP:  # the program's own tile (its slice on chip)
            backward_tile(rows, cols, rmask, mask_h, mask_p, lens, s, gather, r_rd, d, rev, w0, w1,
                          w2, w3, dy_ptr, w_ptr, wr_ptr, h0_ptr, c0_ptr, y_ptr, ws_ptr, kh_ptr,
                          kc_ptr, dgx_ptr, dhs_ptr, dhbuf_ptr, dcbuf_ptr, rbuf_ptr, B, H, P, relu,
                          D, dgx_blocks, zoneout, CELL, G, S, BLOCK_B, BLOCK_H, BLOCK_K, PROJ,
                          W_ON_CHIP, PREC)
        else:
            for t in range(tl.program_id(0) * tl.num_programs(1) + tl.program_id(1),
                           tl.cdiv(B, BLOCK_B) * slices, tl.num_programs(0) * tl.num_programs(1)):
                rows, cols, rmask, mask_h, mask_p, lens = tile(t // slices, t % slices, B, H,
                                                               P, len_ptr, BLOCK_B, BLOCK_H)
                backward_tile(rows, cols, rmask, mask_h, mask_p, lens, s, gather, r_rd, d, rev, w0,
                              w1, w2, w3, dy_ptr, w_ptr, wr_ptr, h0_ptr, c0_ptr, y_ptr, ws_ptr,
                              kh_ptr, kc_ptr, dgx_ptr, dhs_ptr, dhbuf_ptr, dcbuf_ptr, rbuf_ptr, B,
                              H, P, relu, D, dgx_blocks, zoneout, CELL, G, S, BLOCK_B, BLOCK_H,
                              BLOCK_K, PROJ, W_ON_CHIP, PREC)
        if barrier:
            grid_barrier(bar_ptr, (q - q_begin + 1) * nprog)
