"""Shared pieces of the recurrence kernels: activations, per-row time indexing, tile loads and
stores, the grid barrier, and the choice of a kernel configuration for a problem size.

Layouts (all contiguous), for ``D`` directions (1, or 2 sharing one launch: grid axis 2):
``gx: (T, B, D*G*H)`` with direction ``d``'s gate ``k`` in columns ``[(d*G + k)*H, ...+H)``;
``W_hh: (D, G*H, P)``; ``W_hr: (D, P, H)``; states ``(D, B, P)`` / ``(D, B, H)``; outputs
``y: (T, B, D*P)`` (a bidirectional layer's output as torch.nn lays it out); the saved
activations ``ws: (T, B, D*S*H)`` and the backward's gradients ``(T, B, D*W*H)`` as *blocks*
(``block_offsets``): every direction's G gate blocks first, laid out as in gx (so the gates
alone are a strided view shaped like gx, and backward can write its gate gradients over the
saved pre-activations), then one extra block per direction where there is one. Row ``b`` of
step ``s`` reads and writes time position ``tt``: ``s`` going forward, ``len_b - 1 - s`` in
reverse; steps ``s >= len_b`` are invalid (state unchanged, zero output written at position
``s``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl

# ``reverse`` codes beyond 0 and 1 (see ``direction``): a launch's D programs along grid axis 2
# are heads of one direction, all forward or all in reverse.
HEADS_FORWARD, HEADS_REVERSE = 2, 3


def runs_reversed(reverse: int, d: int) -> bool:
    """Whether direction (or head) ``d`` of a launch with this ``reverse`` code runs in
    reverse (``direction``'s rule, on the host)."""
    return (d == 1 and reverse < HEADS_FORWARD) != (reverse % 2 == 1)


# Cell codes (the ``CELL`` constexpr of every kernel).
LSTM, GRU, RNN_TANH, RNN_RELU, SLSTM = 0, 1, 2, 3, 4
CELLS = {"LSTM": LSTM, "GRU": GRU, "RNN_TANH": RNN_TANH, "RNN_RELU": RNN_RELU, "SLSTM": SLSTM}
GATES = {LSTM: 4, GRU: 3, RNN_TANH: 1, RNN_RELU: 1, SLSTM: 4}
# Values saved per step for backward, in units of H: LSTM the pre-activations of i, f, g, o
# and (extra block) c; GRU those of r, z, n and (extra block) h W_hn^T + b_hn; sLSTM those of
# i, f, z, o and (three extra blocks) c, n, m; an Elman RNN only needs its output y (used as
# its saved activation).
SAVED = {LSTM: 5, GRU: 4, RNN_TANH: 0, RNN_RELU: 0, SLSTM: 7}
# Cell states besides h, laid out ``(D, C, B, H)`` (state ``j`` of direction ``d`` in rows
# ``(d*C + j)*B ..``; the LSTM's c is ``(D, B, H)``): LSTM c; sLSTM c, n, m.
CELL_STATES = {LSTM: 1, GRU: 0, RNN_TANH: 0, RNN_RELU: 0, SLSTM: 3}


def saved_dtype(cell: int, dtype: torch.dtype) -> torch.dtype:
    """dtype of the values a forward saves: the input's, except the sLSTM's (float32), whose
    stabiliser m enters backward through ``exp``: rounded to half precision (an absolute error
    of up to 2**-8 |m|) it would scale the gate gradients by ``exp`` of that error."""
    return torch.float32 if cell == SLSTM else dtype

# Bytes of W_hh (plus W_hr) one program may hold across the time loop; larger problems take
# the split path. Sizes and warps are checked against spills by tests/test_kernel_compile.py,
# with the oldest and the newest Triton the project supports (their ptxas differ).
RESIDENT_BYTES = 32 * 1024
RESIDENT_WARPS = 8  # 16 in some backward kernels (resident_warps)
MIN_BLOCK = 16  # tl.dot needs every dimension >= 16
PROJ_MIN_BLOCK = 32  # the projection's dots spill with 16-wide P tiles
SPLIT_BLOCK_H = 16  # hidden units per program on the split path
# Reduction chunk streamed per tl.dot on the split path: 64 (1.4-1.7x faster than 32 on an
# H100), except in float32 forwards of sizes not aligned (is_aligned; the LSTM's spills with 64).
SPLIT_BLOCK_K = 64
FP32_FORWARD_BLOCK_K = 32
# A split program keeps its W_hh slice (G x SPLIT_BLOCK_H x padded P) on chip for the whole time
# loop instead of streaming it when the slice is at most CHIP_BYTES with at most CHIP_GATE_K
# gate columns times P, and P pads to at most CHIP_MAX_K: LSTM H <= 512, GRU H <= 1024 in half
# precision and <= 512 in float32, RNN H <= 1024 (and the half-precision LSTM backward up to
# 1024 for aligned sizes). Warps: ``chip_warps``.
CHIP_BYTES = 128 * 1024
CHIP_GATE_K = 3 * 1024  # the half-precision LSTM spills at 4 x 1024, forward and backward
CHIP_GATE_K_ALIGNED_BACKWARD = 4 * 1024  # except its backward for aligned sizes (is_aligned)
CHIP_MAX_K = 1024
# The TF32 backward for aligned sizes keeps at most 96 KB on chip: the LSTM's 128 KB slice (H=512)
# spills with 4 warps (Triton 3.9) and is 1.3x slower with 8 than streamed (H100, T=100 B=64).
CHIP_BYTES_TF32_ALIGNED_BACKWARD = 96 * 1024
ALIGN = 16  # Triton's divisibility specialisation of integer arguments (see is_aligned)
# Integer kernel arguments Triton must not specialise (on divisibility by 16, or on being 1):
# only H and P decide a kernel's variant, so each config compiles to the one variant
# tests/test_kernel_compile.py checks for its sizes (tanh and relu, and one direction either
# way and both, share a kernel).
NOT_SPECIALIZED = ["T", "B", "relu", "D", "reverse"]
# A forward at batch 1 takes *vector* programs (``Config.vector``) of VECTOR_BLOCK_H hidden units
# up to H = VECTOR_MAX_H, for both directions up to half of it (128 programs: one per SM of an
# H100 behind the grid barrier), their W_hh slice (at most 128 KB: the float32 LSTM's at
# H = 1024) held in registers by VECTOR_WARPS warps.
VECTOR_BLOCK_H = 8
VECTOR_MAX_H = 1024
VECTOR_WARPS = 8


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def log_sigmoid(x):
    """``log(sigmoid(x))`` without overflow: ``min(x, 0) - log(1 + exp(-|x|))``."""
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def tanh(x):
    return 2.0 * sigmoid(2.0 * x) - 1.0


@triton.jit
def mm(a, b, PREC: tl.constexpr):
    """``a @ b`` with float32 accumulation; operands share the weights' dtype.

    PREC "upcast" multiplies in float32 (exact for bfloat16 operands, so the same result): the
    interpreter's tl.dot cannot multiply bfloat16.
    """
    if PREC == "upcast":
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    return tl.dot(a, b, input_precision=PREC)


@triton.jit
def tile_masks(rows, hcols, pcols, B, H, P, len_ptr):
    """A program's row mask, its [rows, hidden] and [rows, output] masks and the rows' sequence
    lengths (always loaded, T each when none were given: one compiled variant either way)."""
    rmask = rows < B
    mask_h = rmask[:, None] & (hcols < H)[None, :]
    mask_p = rmask[:, None] & (pcols < P)[None, :]
    return rmask, mask_h, mask_p, tl.load(len_ptr + rows, mask=rmask, other=0)


@triton.jit
def direction(reverse):
    """This program's direction ``d`` (grid axis 2: 0, or 0 and 1 for both directions in one
    launch) and whether it runs in reverse: direction 0 when ``reverse`` is 1, direction 1
    opposite to direction 0. ``reverse`` 2 or 3 (HEADS_FORWARD, HEADS_REVERSE): the D
    "directions" are the heads of a block-diagonal recurrence, all running forward (2) or all
    in reverse (3).

    Direction ``d`` of a ``(T, B, D*X)`` tensor is its columns ``[d*X, (d+1)*X)`` (see
    ``seq_offsets``); of a ``(D, B, X)`` state, rows ``d*B + rows``; of ``W_hh: (D*G*H, P)``,
    gates ``d*G ..``; of ``W_hr: (D*P, H)``, gate ``d``. The directions and ``reverse`` are
    runtime values: one compiled kernel serves one direction either way and both.
    """
    d = tl.program_id(2)
    return d, ((d == 1) & (reverse < 2)) != ((reverse % 2) == 1)


@triton.jit
def step_rows(s, lens, rev):
    """Time position of step ``s`` for each row (counted back from the row's last step when
    ``rev``), and whether the step is valid there."""
    valid = s < lens
    return tl.where(rev & valid, lens - 1 - s, s), valid


@triton.jit
def prev_rows(tt, lens, rev):
    """Position of the step before ``tt`` in running order, and whether ``tt`` is the first."""
    return tl.where(rev, tt + 1, tt - 1), tl.where(rev, tt == lens - 1, tt == 0)


@triton.jit
def seq_offsets(tt, rows, B, width, d, D):
    """Element offsets of direction ``d``'s rows ``rows`` at positions ``tt`` in a
    (T, B, D*width) tensor."""
    return (tt.to(tl.int64) * B + rows) * (D * width) + d * width


@triton.jit
def block_offsets(tt, rows, B, H, d, D, G: tl.constexpr, W):
    """Element offsets of direction ``d``'s first gate block for rows ``rows`` at positions
    ``tt`` in a (T, B, D*W*H) tensor of blocks of H, and the distance from there to its first
    extra block (when ``W > G``): all directions' G gate blocks come first (gate ``k`` of
    direction ``d`` at ``(d*G + k)*H``, as in gx), then ``W - G`` extra blocks per direction
    (direction ``d``'s from ``D*G + d*(W - G)``)."""
    base = (tt.to(tl.int64) * B + rows) * (D * W * H)
    return base + d * G * H, (D * G + d * (W - G) - d * G) * H


@triton.jit
def state_offsets(CELL: tl.constexpr, d, j, rows, B, H):
    """Element offsets of rows ``rows`` of direction ``d``'s cell state ``j`` (CELL_STATES)."""
    if CELL == 4:
        return ((d * 3 + j) * B + rows) * H
    return (d * B + rows) * H


@triton.jit
def load_tile(ptr, row_off, cols, mask):
    """[rows, cols] tile at ``ptr + row_off[:, None] + cols[None, :]`` as float32, 0 if masked."""
    return tl.load(ptr + row_off[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def store_tile(ptr, row_off, cols, value, mask):
    """Store ``value`` at ``ptr + row_off[:, None] + cols[None, :]`` in ``ptr``'s dtype."""
    tl.store(ptr + row_off[:, None] + cols[None, :], value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def load_w(w_ptr, gate, out_idx, in_idx, H, P, TRANS: tl.constexpr):
    """Gate ``gate`` of ``W: (n*H, P)``: ``W_k^T[in_idx, out_idx]`` (TRANS) or
    ``W_k[out_idx, in_idx]``, zero outside ``H x P``; in the weights' dtype (int32 offsets:
    D*G*H*P < 2**31 up to H = 2048)."""
    if TRANS:
        offs = (gate * H + out_idx[None, :]) * P + in_idx[:, None]
        mask = (out_idx[None, :] < H) & (in_idx[:, None] < P)
    else:
        offs = (gate * H + out_idx[:, None]) * P + in_idx[None, :]
        mask = (out_idx[:, None] < H) & (in_idx[None, :] < P)
    return tl.load(w_ptr + offs, mask=mask, other=0.0)


@triton.jit
def gate_weights(w_ptr, g0, out_idx, in_idx, H, P, G: tl.constexpr, TRANS: tl.constexpr):
    """``load_w`` of gates ``g0 .. g0+G-1`` of ``W: (D*G*H, P)`` (``g0 = d*G``: direction d's;
    ``w0`` again in place of the gates past G)."""
    w0 = load_w(w_ptr, g0, out_idx, in_idx, H, P, TRANS)
    w1, w2, w3 = w0, w0, w0
    if G > 1:
        w1 = load_w(w_ptr, g0 + 1, out_idx, in_idx, H, P, TRANS)
        w2 = load_w(w_ptr, g0 + 2, out_idx, in_idx, H, P, TRANS)
    if G > 3:
        w3 = load_w(w_ptr, g0 + 3, out_idx, in_idx, H, P, TRANS)
    return w0, w1, w2, w3


@triton.jit
def grid_barrier(bar_ptr, target):
    """Wait until every program of the grid has arrived ``target / num_programs`` times.

    Needs all programs resident at once (never under TRITON_INTERPRET, which runs them in turn).
    """
    tl.debug_barrier()
    tl.atomic_add(bar_ptr, 1, sem="release", scope="gpu")
    while tl.atomic_add(bar_ptr, 0, sem="acquire", scope="gpu") < target:
        pass
    tl.debug_barrier()


# --- configuration --------------------------------------------------------------------------


def pow2(n: int) -> int:
    """Smallest power of two >= max(n, MIN_BLOCK)."""
    return max(MIN_BLOCK, 1 << (n - 1).bit_length())  # per launch: cheaper than triton.next_power_of_2


@dataclass(frozen=True)
class Config:
    """How one layer's recurrence is launched, forward or backward.

    One batch tile of ``block_b`` rows per program (tl.dot's minimum; larger tiles spill).
    resident: one program per batch tile owns the whole hidden width, keeps W_hh (and W_hr)
    on chip and its state in registers for all steps; ``block_h`` and ``block_k`` are H and P
    (the width of h, the reduction of h W_hh^T) padded. Otherwise the split path: programs own
    ``block_h`` hidden units of a batch tile, stream W_hh in ``block_k`` chunks and exchange
    the state through global memory once per step; ``w_on_chip`` (no projection): they load
    their W_hh slice once instead, ``block_k`` covering the whole padded reduction; ``vector``
    (forward, one batch row per program, ``block_b`` 1): they hold it in registers and compute
    the gates' products on the CUDA cores (a batch of one would fill a sixteenth of a
    tensor-core tile), so each step costs a load of h, the products and the grid barrier.

    Configs let a thread use every register an SM has for one program (``maxnreg``): the split
    path runs one program per SM and the resident one few, so occupancy is not worth a spill,
    and ptxas's own choice caps some kernels at half of that and spills. The half-precision
    backward with W_hh on chip keeps ptxas's choice (with the cap, its widest slices spill).
    """

    resident: bool
    block_b: int
    block_h: int
    block_k: int
    num_warps: int
    num_stages: int = 1
    w_on_chip: bool = False
    vector: bool = False
    maxnreg: int | None = None  # registers per thread ptxas may use (None: its own choice)


def _exact_fp32_lstm_forward(cell: int, backward: bool, proj: bool, dtype: torch.dtype) -> bool:
    """The LSTM forward in float32 without projection and without TF32: it spills with more
    than 4 warps or 1 stage (with TF32 it takes 8 warps and 3 stages)."""
    return cell in (LSTM, SLSTM) and not backward and not proj and _exact_fp32(dtype)


def grad_blocks(cell: int, proj: bool) -> int:
    """Blocks of H per direction in the backward's gradients when they get their own tensor
    (written over ws they take its SAVED blocks): the G gate gradients, plus the GRU's
    ``r * dn`` (the gradient of ``h W_hn^T + b_hn``: dW_hn and db_hn) or, with a projection,
    the LSTM's ``m = o * tanh(c)`` (for dW_hr)."""
    return GATES[cell] + int(cell == GRU or proj)


def is_aligned(hidden_size: int, proj_size: int = 0) -> bool:
    """Whether a layer's launches run kernels specialised for aligned accesses: Triton compiles
    a variant for integer arguments divisible by 16 (the kernels' H and P) and 16-byte aligned
    pointers (which the launchers guarantee), whose loads are vectorised and software-pipelined
    and need fewer registers; those variants are checked against spills with their own configs."""
    return hidden_size % ALIGN == 0 and (proj_size or hidden_size) % ALIGN == 0


def _exact_fp32(dtype: torch.dtype) -> bool:
    """float32 products without TF32."""
    return dtype == torch.float32 and torch_dot_precision(dtype) == "ieee"


def split_warps(cell: int, backward: bool, proj: bool, dtype: torch.dtype) -> int:
    """Warps of a split-path program streaming W_hh (sizes not aligned): 4 in the backward
    except the float32 RNN; 8 in the forward except the exact float32 LSTM (ptxas keeps a stack
    frame in the GRU forward and the projected or half-precision LSTM forward with 4)."""
    if backward:
        return 8 if cell in (RNN_TANH, RNN_RELU) and dtype.itemsize == 4 else 4
    return 4 if _exact_fp32_lstm_forward(cell, backward, proj, dtype) else 8


def split_stages(cell: int, backward: bool, proj: bool, dtype: torch.dtype) -> int:
    """Software-pipelining stages of a streaming split program (sizes not aligned): 3 (its chunk
    loads overlap the products; 1.5-3x faster on an H100) except the exact float32 LSTM
    forward, the float32 LSTM and GRU backward and the projected LSTM forward, which spill
    (1 stage), and the LSTM forward and the half-precision sLSTM forward (2: with zoneout's
    loads the LSTM's spills with 3)."""
    if _exact_fp32_lstm_forward(cell, backward, proj, dtype) or (proj and not backward):
        return 1
    if not backward and (cell == LSTM or (cell == SLSTM and dtype.itemsize == 2)):
        return 2  # (3 spill)
    if backward and dtype.itemsize == 4 and cell in (LSTM, GRU, SLSTM):
        return 1
    return 3


def split_block_k(dtype: torch.dtype, backward: bool) -> int:
    """Reduction chunk a streaming split program loads per product (sizes not aligned)."""
    return FP32_FORWARD_BLOCK_K if dtype.itemsize == 4 and not backward else SPLIT_BLOCK_K


def aligned_stream(cell: int, block_k: int, dtype: torch.dtype, backward: bool) -> Config:
    """A streaming split program for aligned sizes without projection: 4 warps, 3 stages,
    64-wide chunks (32 in the exact float32 LSTM and GRU backward and the TF32 LSTM and sLSTM
    forward, which spill with 64; the forward since the tile loop)."""
    tf32_forward = (not backward and cell in (LSTM, SLSTM) and dtype == torch.float32
                    and not _exact_fp32(dtype))
    if tf32_forward or backward and cell in (LSTM, GRU, SLSTM) and _exact_fp32(dtype):
        block_k = min(block_k, FP32_FORWARD_BLOCK_K)
    return Config(False, MIN_BLOCK, SPLIT_BLOCK_H, min(SPLIT_BLOCK_K, block_k), 4, 3)


def resident_warps(tile: int, dtype: torch.dtype, backward: bool) -> int:
    """Warps of a resident program whose padded W_hh gate tile has ``tile`` elements: 8, in the
    backward 16 from 64 x 64 (32 x 32 in exact float32), where 8 spill."""
    if backward and tile >= (32 * 32 if _exact_fp32(dtype) else 64 * 64):
        return 2 * RESIDENT_WARPS
    return RESIDENT_WARPS


def chip_warps(cell: int, chip_bytes: int, backward: bool, dtype: torch.dtype,
               aligned: bool = False) -> int:
    """Warps of a split program holding a W_hh slice of ``chip_bytes``: 8 in the exact float32
    backward; else 4 (1.2-1.4x faster than 8 on an H100) for aligned sizes in half precision or
    TF32; otherwise 4 up to 32 KB except the GRU forward, 8 above (4 spill there, 16 cap
    registers at 128)."""
    if backward and (_exact_fp32(dtype) or cell == SLSTM):  # the sLSTM backward spills with 4
        return 8
    if aligned and not _exact_fp32(dtype):
        return 4
    if chip_bytes <= 32 * 1024 and (backward or cell != GRU):
        return 4
    return 8


def chip_fits(cell: int, block_k: int, dtype: torch.dtype, backward: bool = False,
              aligned: bool = False) -> bool:
    """Whether a split program keeps its W_hh slice on chip (reduction padded to block_k); the
    half-precision backward for aligned sizes up to CHIP_GATE_K_ALIGNED_BACKWARD gate columns."""
    gate_k = (CHIP_GATE_K_ALIGNED_BACKWARD if aligned and backward and dtype.itemsize == 2
              else CHIP_GATE_K)
    limit = CHIP_BYTES
    if aligned and backward and dtype == torch.float32 and not _exact_fp32(dtype):
        limit = CHIP_BYTES_TF32_ALIGNED_BACKWARD
    return (GATES[cell] * SPLIT_BLOCK_H * block_k * dtype.itemsize <= limit
            and GATES[cell] * block_k <= gate_k and block_k <= CHIP_MAX_K)


def _resident_bytes(cell: int, backward: bool, dtype: torch.dtype) -> int:
    """RESIDENT_BYTES, halved for the sLSTM's backward (three state gradients and their saved
    states per tile: its 32 KB tiles spill with 16 warps, which cap registers at 128) and the
    half-precision LSTM's (its 32 KB tile spills with Triton 3.6 since zoneout's code)."""
    if backward and (cell == SLSTM or (cell == LSTM and dtype.itemsize == 2)):
        return RESIDENT_BYTES // 2
    return RESIDENT_BYTES


def out_block(hidden_size: int, proj_size: int) -> int:
    """Padded width of h: P (at least PROJ_MIN_BLOCK) with a projection, else H."""
    return max(PROJ_MIN_BLOCK, pow2(proj_size)) if proj_size else pow2(hidden_size)


def pick_config(
    cell: int, hidden_size: int, batch: int, dtype: torch.dtype, proj_size: int = 0,
    backward: bool = False, vector: bool = True, directions: int = 1, on_chip: bool = True,
) -> Config:
    """The launch configuration for a cell code, sizes, input dtype and pass (``vector``: may
    pick vector programs, see ``Config``; at most VECTOR_MAX_H // VECTOR_BLOCK_H for all
    ``directions`` of a launch; ``on_chip``: may keep W_hh slices on chip, vector programs
    included)."""
    bh, bp = pow2(hidden_size), out_block(hidden_size, proj_size)
    aligned = not proj_size and is_aligned(hidden_size)
    if (GATES[cell] + (proj_size > 0)) * bh * bp * dtype.itemsize <= _resident_bytes(
            cell, backward, dtype):
        warps = resident_warps(bh * bp, dtype, backward)
        if (cell in (RNN_TANH, RNN_RELU) and not backward and not aligned and _exact_fp32(dtype)
                and bh * bp >= 64 * 64):
            warps = 2 * RESIDENT_WARPS  # (8 spill with Triton 3.6 since zoneout's code)
        cfg = Config(True, MIN_BLOCK, bh, bp, warps)
    elif (vector and on_chip and not proj_size and not backward and batch == 1
          and directions * bh <= VECTOR_MAX_H):
        cfg = Config(False, 1, VECTOR_BLOCK_H, bh, VECTOR_WARPS, w_on_chip=True, vector=True)
    elif on_chip and not proj_size and chip_fits(cell, bh, dtype, backward, aligned):
        chip_bytes = GATES[cell] * SPLIT_BLOCK_H * bh * dtype.itemsize
        cfg = Config(False, MIN_BLOCK, SPLIT_BLOCK_H, bh,
                     chip_warps(cell, chip_bytes, backward, dtype, aligned), w_on_chip=True)
    elif aligned:
        cfg = aligned_stream(cell, bh, dtype, backward)
    else:
        cfg = Config(False, MIN_BLOCK, SPLIT_BLOCK_H, min(split_block_k(dtype, backward), bh),
                     split_warps(cell, backward, proj_size > 0, dtype),
                     split_stages(cell, backward, proj_size > 0, dtype))
    return with_registers(cfg, dtype, backward)


def with_registers(cfg: Config, dtype: torch.dtype, backward: bool) -> Config:
    """``cfg`` with its ``maxnreg`` (see ``Config``)."""
    if backward and cfg.w_on_chip and dtype.itemsize == 2:
        return replace(cfg, maxnreg=None)
    return replace(cfg, maxnreg=min(255, 65536 // (32 * cfg.num_warps)))


def torch_dot_precision(dtype: torch.dtype, interpreted: bool = False) -> str:
    """tl.dot input precision: TF32 for float32 exactly when cuDNN may use it, else exact
    ("upcast" for bfloat16 in the interpreter, see ``mm``)."""
    if interpreted and dtype == torch.bfloat16:
        return "upcast"
    if dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "ieee"
