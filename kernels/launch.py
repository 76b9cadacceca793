"""Launchers of the recurrence kernels (no autograd): allocate outputs, pick a config, launch.

One launch runs ``D`` directions of a layer (``D = w_hh.shape[0]``, 1 or 2; layouts in
:mod:`fastrnn.kernels.common`). ``forward`` returns ``(y, h_n, c_n, ws)``; ``ws`` holds what
``backward`` needs (the values of ``common.SAVED``, or ``y`` itself for an Elman RNN).
``backward`` returns the gradients ``grads: (T, B, D*W*H)`` (the gate gradients in their first
``D*G*H`` columns, which are also the gradient of the input projection, then the GRU's ``r * dn``
or the projected LSTM's ``m``: see ``common.grad_blocks``), ``dh0``, ``dc0`` and, with a
projection, ``dhs: (T, B, D*P)`` (the total gradient of every step's h, for dW_hr). Given
``into=ws``, it writes them over the saved values (``W = S``) and allocates no gradient tensor
of that size.
"""

from __future__ import annotations

import os

import torch
from fastrnn.kernels.common import (
    GATES,
    GRU,
    LSTM,
    RNN_RELU,
    RNN_TANH,
    SAVED,
    Config,
    grad_blocks,
    pick_config,
    saved_dtype,
)
from fastrnn.kernels.common import torch_dot_precision as _precision
from fastrnn.kernels.recurrence import resident_backward_kernel, resident_forward_kernel
from fastrnn.kernels.split import split_backward_kernel, split_forward_kernel
from torch import Tensor
from triton.runtime.jit import JITFunction

__all__ = ["backward", "forward", "kernel_meta", "resident_programs", "uses_barrier"]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def is_interpreted(device: torch.device) -> bool:
    """Whether launches on ``device`` run in Triton's interpreter."""
    return device.type != "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def resident_programs(device: torch.device) -> int:
    """How many programs of a split launch run at once, which the grid barrier needs: one per
    SM (a split config takes an SM's registers, ``Config.maxnreg``); one in the interpreter,
    which runs programs in turn."""
    if is_interpreted(device):
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def uses_barrier(device: torch.device, programs: int) -> bool:
    """Whether a split launch of ``programs`` programs, one tile each, runs all steps behind a
    grid barrier (all programs resident)."""
    return programs <= resident_programs(device)


def kernel_meta(
    cell: int,
    dtype: torch.dtype,
    cfg: Config,
    *,
    backward: bool,
    proj: bool = False,
    interpreted: bool = False,
) -> tuple[JITFunction, dict]:
    """The kernel a launch with this config runs: its constexprs, ``num_warps``, ``num_stages``
    and ``maxnreg``. Everything else a launch varies (lengths or none, saving or not, the grid
    barrier or a launch per phase, directions, relu) is a runtime argument, so this is the one
    variant the config compiles to (besides the divisibility of H and P)."""
    meta = {
        "CELL": RNN_TANH if cell == RNN_RELU else cell, "G": GATES[cell], "BLOCK_B": cfg.block_b,
        "S": SAVED[cell] or (1 if backward else 0),
        "PREC": "ieee" if cfg.vector and not backward else _precision(dtype, interpreted),
        "PROJ": proj,
        "num_warps": cfg.num_warps, "num_stages": cfg.num_stages, "maxnreg": cfg.maxnreg,
    }
    if cfg.resident:
        meta |= {"BLOCK_H": cfg.block_h, "BLOCK_P": cfg.block_k}
        return (resident_backward_kernel if backward else resident_forward_kernel), meta
    meta |= {"BLOCK_H": cfg.block_h, "BLOCK_K": cfg.block_k,
             "W_ON_CHIP": cfg.w_on_chip and not proj}
    if not backward:
        meta["VECTOR"] = cfg.vector and not proj
    return (split_backward_kernel if backward else split_forward_kernel), meta


def _run_phases(kernel: JITFunction, grid: tuple[int, int], args: tuple, meta: dict,
                phases: int, barrier: bool) -> None:
    """Launch a split kernel over ``phases`` phases: all in one launch behind the grid barrier,
    or one launch per phase."""
    if barrier:
        kernel[grid](*args, 1, 0, phases, **meta)
        return
    for q in range(phases):
        kernel[grid](*args, 0, q, q + 1, **meta)


def _grid(
    cfg: Config, B: int, H: int, D: int, device: torch.device
) -> tuple[tuple[int, int, int], bool]:
    """The grid (batch tiles, hidden slices, directions) and whether a split launch runs all
    its phases behind the grid barrier.

    Split programs with W_hh streamed loop over tiles (``split.tile``): where the tiles
    outnumber the programs that can run at once, the grid is cut to those, (1, n, D), n the
    fewest programs that give each as few tiles as the SMs allow, rather than a launch per
    phase (a launch per step pays a launch where a barrier suffices). Programs with W_hh on
    chip own one tile (a loop around their products spills): beyond the SMs, one launch per
    phase, which the launchers avoid by taking the streaming config (``_beyond_the_sms``)."""
    tiles = (_cdiv(B, cfg.block_b), 1 if cfg.resident else _cdiv(H, cfg.block_h))
    if cfg.resident:
        return (*tiles, D), False
    room = resident_programs(device)
    if tiles[0] * tiles[1] * D <= room:
        return (*tiles, D), True
    if cfg.w_on_chip or D > room:
        return (*tiles, D), False
    total = tiles[0] * tiles[1]
    return (1, _cdiv(total, _cdiv(total, room // D)), D), True


def _beyond_the_sms(cfg: Config, barrier: bool, picked: bool, device: torch.device) -> bool:
    """Whether a launch should take the streaming config instead: W_hh on chip (vector
    programs included) in more programs than the GPU runs at once would take a launch per
    step, each reloading every slice, where streaming programs run several tiles behind the
    barrier. Not in the interpreter (its one resident program would hide the on-chip path) nor
    for a config the caller chose."""
    return cfg.w_on_chip and not barrier and picked and not is_interpreted(device)


def _lengths(lengths: Tensor | None, T: int, B: int, device: torch.device) -> Tensor:
    """(B,) int32 sequence lengths on ``device``: ``lengths``, or T for every sequence."""
    if lengths is None:
        return torch.full((B,), T, device=device, dtype=torch.int32)
    return _aligned(lengths.to(device, torch.int32))


def _runtime(cell: int, D: int, reverse: int) -> tuple[int, int, int]:
    """The kernels' runtime flags after T, B, H, P: relu, directions, the reverse code (0, 1,
    or common.HEADS_FORWARD / HEADS_REVERSE)."""
    return int(cell == RNN_RELU), D, int(reverse)


def _zoneout(cell: int, zoneout: tuple[Tensor, ...] | None, proj: bool, like: Tensor,
             ) -> tuple[int, Tensor, Tensor]:
    """The kernels' zoneout code (1, or 0 without) and keep pointers of h and c from
    ``zoneout``: the keep values of h (and the LSTM's c), each float32 ``(T, B, D*H)``
    (``recurrence.keep_tile``)."""
    if zoneout is None:
        return 0, like, like
    if proj:
        raise ValueError("the fused kernels take no zoneout with a projection")
    kh = _aligned(zoneout[0].float())
    kc = _aligned(zoneout[1].float()) if cell == LSTM else kh
    return 1, kh, kc


def _aligned(t: Tensor) -> Tensor:
    """``t`` contiguous at a 16-byte aligned address (a copy if a view starts elsewhere), so
    each config runs the kernel variant it was checked as (see common.is_aligned)."""
    t = t.contiguous()
    return t if t.data_ptr() % 16 == 0 else t.clone()


def forward(
    cell: int,
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    c0: Tensor | None = None,
    w_hr: Tensor | None = None,
    b_hn: Tensor | None = None,
    lengths: Tensor | None = None,
    reverse: int = 0,
    save: bool = True,
    config: Config | None = None,
    ws: Tensor | None = None,
    dtype: torch.dtype | None = None,
    zoneout: tuple[Tensor, ...] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """D directions in one launch (direction 1 runs opposite to direction 0, which runs in
    reverse when ``reverse``): gx: (T, B, D*G*H), w_hh: (D, G*H, P), h0: (D, B, P),
    c0: the cell states (D, B, H) (LSTM) or (D, 3, B, H) (sLSTM: c, n, m), w_hr: (D, P, H),
    b_hn: (D, H) -> y: (T, B, D*P), h_n, c_n (like c0), ws.

    When saving, the kernel reads gx from the gate blocks of ws (common.block_offsets) and
    overwrites them with the pre-activations: ``ws`` (T, B, D*S*H) in ``saved_dtype`` may come
    with the input projection already there (``gx`` its view), else gx is copied in. ``dtype``:
    the layer's (y's and the products' operands'), gx's by default (gx may be ws's view).
    ``zoneout``: the keep values of h (and the LSTM's c), float32 (T, B, D*H) (no
    projection); an Elman RNN saving under zoneout returns as ws its h before zoneout
    (T, B, D*H), which its backward needs."""
    D, GH, P = w_hh.shape
    T, B, _ = gx.shape
    H = GH // GATES[cell]
    proj = P if w_hr is not None else 0
    dtype = dtype or gx.dtype
    cfg = config or pick_config(cell, H, B, dtype, proj, directions=D)
    grid, barrier = _grid(cfg, B, H, D, gx.device)
    if _beyond_the_sms(cfg, barrier, config is None, gx.device):
        cfg = pick_config(cell, H, B, dtype, proj, vector=False)  # batched, W_hh on chip
        grid, barrier = _grid(cfg, B, H, D, gx.device)
        if _beyond_the_sms(cfg, barrier, True, gx.device):
            cfg = pick_config(cell, H, B, dtype, proj, on_chip=False)
            grid, barrier = _grid(cfg, B, H, D, gx.device)
    S = SAVED[cell] if save else 0
    gx_blocks = S or GATES[cell]  # blocks of H per direction in the rows the kernel reads
    y = gx.new_empty(T, B, D * P, dtype=dtype)
    if S:
        if ws is None:
            ws = gx.new_empty(T, B, D * S * H, dtype=saved_dtype(cell, dtype))
            ws[..., : D * GH] = gx
        gx = ws  # the kernel reads the projection from ws's gate blocks
    else:
        gx = _aligned(gx)
    code, kh, kc = _zoneout(cell, zoneout, w_hr is not None, gx)
    if not S and code and save:  # an RNN saves its h before zoneout
        ws, code = gx.new_empty(T, B, D * H, dtype=dtype), 2
    ws = ws if S or code == 2 else y
    w_hh = _aligned(w_hh.to(y.dtype))
    lens = _lengths(lengths, T, B, gx.device)
    if cell == GRU and b_hn is None:  # the kernels always add it
        b_hn = gx.new_zeros(D, H)
    bhn = gx if b_hn is None else _aligned(b_hn)
    wr = gx if w_hr is None else _aligned(w_hr.to(y.dtype))
    kernel, meta = kernel_meta(cell, y.dtype, cfg, backward=False, proj=w_hr is not None,
                               interpreted=is_interpreted(gx.device))
    if cfg.resident:
        h_n = y.new_empty(D, B, P)
        c_n = None if c0 is None else y.new_empty(c0.shape)
        kernel[grid](
            gx, w_hh, wr, bhn, _aligned(h0), gx if c0 is None else _aligned(c0), lens, y,
            h_n, gx if c_n is None else c_n, ws, kh, kc, T, B, H, P, *_runtime(cell, D, reverse),
            gx_blocks, code, **meta,
        )
        return y, h_n, c_n, ws
    hbuf = torch.empty(D, 2, B, P, device=gx.device, dtype=torch.float32)
    hbuf[:, 1] = h0
    cbuf = hbuf if c0 is None else c0.float().clone()
    mbuf = hbuf if w_hr is None else torch.empty(D, B, H, device=gx.device, dtype=torch.float32)
    bar = torch.zeros(1, device=gx.device, dtype=torch.int32)
    args = (gx, w_hh, wr, bhn, lens, y, ws, kh, kc, hbuf, cbuf, mbuf, bar, T, B, H, P,
            *_runtime(cell, D, reverse), gx_blocks, code)
    _run_phases(kernel, grid, args, meta, T * (1 + (w_hr is not None)), barrier)
    h_n = hbuf[:, (T - 1) % 2].to(y.dtype)
    return y, h_n, None if c0 is None else cbuf.to(y.dtype), ws


def backward(
    cell: int,
    dy: Tensor,
    dh_n: Tensor,
    dc_n: Tensor | None,
    w_hh: Tensor,
    w_hr: Tensor | None,
    h0: Tensor,
    c0: Tensor | None,
    y: Tensor,
    ws: Tensor,
    lengths: Tensor | None = None,
    reverse: int = 0,
    config: Config | None = None,
    into: Tensor | None = None,
    zoneout: tuple[Tensor, ...] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Gradients through D directions' recurrences (shapes as ``forward``'s; ``zoneout`` and
    an RNN's ws under it as the forward's): -> grads: (T, B, D*W*H) (``into`` when given: ws,
    which they overwrite, in its dtype), dh0: (D, B, P), dc0 (like c0), dhs: (T, B, D*P)
    (projection)."""
    D, GH, P = w_hh.shape
    T, B, _ = y.shape
    H = GH // GATES[cell]
    proj = P if w_hr is not None else 0
    cfg = config or pick_config(cell, H, B, y.dtype, proj, backward=True)
    w_hh = _aligned(w_hh.to(y.dtype))
    if into is not None and (into is not ws or not SAVED[cell]):
        raise ValueError("backward writes its gradients only over the saved values ws")
    y, ws = _aligned(y), _aligned(ws)
    if into is None:
        blocks = grad_blocks(cell, w_hr is not None)
        dgx = y.new_empty(T, B, D * blocks * H)
    else:
        blocks, dgx = SAVED[cell], ws
    lens = _lengths(lengths, T, B, y.device)
    dy = _aligned(dy)
    h0 = _aligned(h0)
    c0 = y if c0 is None else _aligned(c0)
    wr = y if w_hr is None else _aligned(w_hr.to(y.dtype))
    code, kh, kc = _zoneout(cell, zoneout, w_hr is not None, y)
    grid, barrier = _grid(cfg, B, H, D, y.device)
    if _beyond_the_sms(cfg, barrier, config is None, y.device):
        cfg = pick_config(cell, H, B, y.dtype, proj, backward=True, on_chip=False)
        grid, barrier = _grid(cfg, B, H, D, y.device)
    kernel, meta = kernel_meta(cell, y.dtype, cfg, backward=True, proj=w_hr is not None,
                               interpreted=is_interpreted(y.device))
    if cfg.resident:
        dh0 = y.new_empty(D, B, P)
        dc0 = None if dc_n is None else y.new_empty(dc_n.shape)
        dhs = y.new_empty(T, B, D * P) if w_hr is not None else None
        kernel[grid](
            dy, _aligned(dh_n), y if dc_n is None else _aligned(dc_n), w_hh, wr, h0, c0, y,
            ws, kh, kc, lens, dgx, dh0, y if dc0 is None else dc0, y if dhs is None else dhs,
            T, B, H, P, *_runtime(cell, D, reverse), blocks, code, **meta,
        )
        return dgx, dh0, dc0, dhs
    dhbuf = dh_n.float().clone()
    dcbuf = dhbuf if dc_n is None else dc_n.float().clone()
    rbuf = torch.zeros(D, 2, B, GH, device=y.device, dtype=y.dtype)  # only ever a dot operand
    dhs = None if w_hr is None else y.new_empty(T, B, D * P)
    bar = torch.zeros(1, device=y.device, dtype=torch.int32)
    args = (dy, w_hh, wr, h0, c0, y, ws, kh, kc, lens, dgx, y if dhs is None else dhs, dhbuf,
            dcbuf, rbuf, bar, T, B, H, P, *_runtime(cell, D, reverse), blocks, code)
    _run_phases(kernel, grid, args, meta, (T + 1) if w_hr is None else 2 * T + 1, barrier)
    return dgx, dhbuf.to(y.dtype), None if dc_n is None else dcbuf.to(y.dtype), dhs
