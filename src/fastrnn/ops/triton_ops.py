"""The triton backend: the fused recurrence kernels of :mod:`fastrnn.kernels` as custom ops.

``lstm_recurrence``, ``gru_recurrence`` and ``rnn_recurrence`` share the signatures and the
semantics of :mod:`fastrnn.reference` (one direction); ``layer`` runs every direction of a layer
in one launch, with its input projection (one GEMM, biases folded in) in the same op. Forward
runs one kernel launch per layer (the time loop inside the kernel; on the split path without a
grid barrier, one launch per phase, see :mod:`fastrnn.kernels.split`); a bidirectional layer's
directions are programs of that launch. Backward runs one reverse-time kernel for the gate
gradients ``dgx`` (which are also the gradient of the input projection), dh0 and dc0; the
input's, weights' and biases' gradients are GEMMs over all steps in torch. Both launchers are
custom ops (``fastrnn::recurrence``, ``fastrnn::recurrence_backward``) with fake implementations
and a registered autograd formula, so ``torch.compile`` traces them without graph breaks.

Memory saved for backward, per layer and direction, in the input dtype (cuDNN keeps a reserve
space of gate activations and cell states per step of the same order, also in the input dtype):

- LSTM: the pre-activations of i, f, g, o and c for every step, ``5 * T * B * H`` values, plus
  the output y that is returned anyway.
- GRU: the pre-activations of r, z, n and ``h W_hn^T + b_hn``, ``4 * T * B * H`` values, plus y.
- Elman RNN: nothing beyond y (the activation's derivative comes from the output).

In training the input projection is written straight into the gate blocks of the saved
values (``common.block_offsets``), which the kernel overwrites step by step with the
pre-activations, so it takes no tensor of its own (in inference it does: ``G * T * B * H``).
Backward writes its gradients (the gate gradients, and the GRU's ``r * dn`` or the projected
LSTM's ``m = o * tanh(c)`` for the weight gradients) over those saved values when the graph is
released after it (no ``retain_graph``), as cuDNN writes over its reserve space: training then
needs no other tensor of that size. Otherwise, and under ``torch.compile``, they take a tensor
of their own (``G * T * B * H`` values, one block of ``T * B * H`` more for a GRU or a
projection); an Elman RNN's always do (``T * B * H``).

Pre-activations rather than activations: backward recomputes each sigmoid and tanh in float32
(cheap next to the step's product), while a saved half-precision activation near saturation
loses its derivative (``1 - s`` is a multiple of ``2**-8`` near ``s = 1``).

Saving instead of recomputing keeps backward at one recurrent product per step (recomputing
the gates would need a second one per step, i.e. a forward pass inside backward, to save the
4H/3H values). Under ``torch.no_grad``/``inference_mode`` nothing is saved.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor

from fastrnn.ops.backend import BackendUnavailableError

try:
    from fastrnn.kernels import common, launch
except ImportError as exc:  # no triton on this platform
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

__all__ = ["gru_recurrence", "layer", "lstm_recurrence", "rnn_recurrence", "slstm_recurrence",
           "unsupported_reason"]

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


_INT32_MAX = 2**31 - 1


def unsupported_reason(
    mode: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    hidden_size: int,
    proj_size: int,
    packed: bool,
    requires_grad: bool,
    batch_size: int = 1,
) -> str | None:
    """None when the fused kernels serve this configuration, else the reason they cannot.

    Raises BackendUnavailableError when the triton backend cannot run here at all (no triton,
    or neither a CUDA device nor ``TRITON_INTERPRET=1``). Packed input and autograd are always
    served (``packed``/``requires_grad`` are part of the dispatcher's protocol). The kernels
    index their state buffers and weights with 32-bit offsets (sequences with 64-bit ones), so
    batch x width and the weights must stay below 2**31 elements, for two directions.
    """
    if _IMPORT_ERROR is not None:
        raise BackendUnavailableError(f"the triton backend needs triton: {_IMPORT_ERROR}")
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise BackendUnavailableError(
            f"the triton backend needs a CUDA device (or TRITON_INTERPRET=1), got {device.type}"
        )
    if dtype not in DTYPES:
        return f"dtype {dtype} (fused kernels take float32, float16, bfloat16)"
    if mode not in common.CELLS:
        return f"no fused kernel for {mode} yet"
    gate_width = common.GATES[common.CELLS[mode]] * hidden_size
    out = proj_size or hidden_size
    if 2 * 2 * batch_size * max(gate_width, out) > _INT32_MAX:
        return f"batch {batch_size} x {gate_width} gate units exceeds 32-bit offsets"
    if 2 * gate_width * out > _INT32_MAX:
        return f"W_hh of {gate_width} x {out} exceeds 32-bit offsets"
    return None


def _gemm_tn(a: Tensor, b: Tensor, dtype: torch.dtype) -> Tensor:
    """sum over steps and rows of a^T b: a: (T, B, M), b: (T, B, N) -> (M, N) in ``dtype``."""
    return (a.reshape(-1, a.shape[-1]).t() @ b.reshape(-1, b.shape[-1]).to(a.dtype)).to(dtype)


def _sum_steps(t: Tensor) -> Tensor:
    """Sum over steps and rows, t: (T, B, N) -> (N,), as one GEMV over its rows (they may be
    strided views of the saved tensor, which a reduction would first copy to float32)."""
    t2 = t.reshape(-1, t.shape[-1])
    return torch.mv(t2.t(), t2.new_ones(t2.shape[0]))


def _grad_w_hh(recs: tuple[Tensor, ...], y: Tensor, h0: Tensor, lengths: Tensor | None,
               reverse: bool, dtype: torch.dtype) -> Tensor:
    """dW_hh of one direction: sum over steps of rec_t^T h_prev(t), where h_prev is the h each
    step started from, for the gate blocks ``recs`` (each (T, B, k*H)) stacked: y: (T, B, P),
    h0: (B, P) -> (G*H, P) in ``dtype``.

    h_prev is y shifted by one step with h0 at each sequence's first step: two GEMMs per block
    instead of materialising it. In reverse a sequence starts at its last position: y and the
    gate gradients are zero past each length, so the shifted product adds nothing there, and
    h0 meets the gate gradients of each sequence's last position."""
    out = []
    for rec in recs:
        if not reverse:
            first, rest, prev = rec[0], rec[1:], y[:-1]
        else:
            rest, prev = rec[:-1], y[1:]
            first = rec[-1] if lengths is None else rec[
                lengths.to(rec.device) - 1, torch.arange(rec.shape[1], device=rec.device)]
        grad = first.t() @ h0.to(rec.dtype)
        if rest.shape[0]:
            grad = torch.addmm(grad, rest.reshape(-1, rest.shape[-1]).t(),
                               prev.reshape(-1, prev.shape[-1]).to(rec.dtype))
        out.append(grad.to(dtype))
    return torch.cat(out)


def _or_empty(t: Tensor | None, like: Tensor) -> Tensor:
    """A custom op returns tensors only: an absent result is an empty one."""
    return like.new_empty(0) if t is None else t


def _directions(t: Tensor, D: int) -> Tensor:
    """(T, B, D*X) -> (T, B, D, X): direction d's columns at index d."""
    return t.view(*t.shape[:2], D, -1)


def _project_into(out: Tensor, x: Tensor, w_ih: Tensor, bias: Tensor | None) -> None:
    """The input projection in one GEMM: out = x w_ih^T + bias, x: (T, B, I), w_ih: (N, I),
    out: (T, B, N) (a view whose rows may be wider than N: the gate blocks of ws)."""
    x2, out2 = x.reshape(-1, x.shape[-1]), out.view(-1, out.shape[-1])
    if bias is None:
        torch.mm(x2, w_ih.t(), out=out2)
    else:
        torch.addmm(bias, x2, w_ih.t(), out=out2)


def _recurrence_impl(
    cell: int, x: Tensor, w_ih: Tensor | None, bias: Tensor | None, w_hh: Tensor, h0: Tensor,
    c0: Tensor | None, w_hr: Tensor | None, b_hn: Tensor | None, lengths: Tensor | None,
    reverse: int, save: bool, kh: Tensor | None = None, kc: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """D directions of a layer, any cell (direction 1 runs opposite to direction 0; with the
    ``reverse`` codes HEADS_FORWARD/HEADS_REVERSE, D heads all one way), from the
    input x: (T, B, I) projected by w_ih: (D*G*H, I) and bias: (D*G*H,) (the biases folded
    in), or from gx = x: (T, B, D*G*H) when w_ih is None; w_hh: (D, G*H, P), h0: (D, B, P),
    c0: (D, B, H), w_hr: (D, P, H), b_hn: (D, H) -> y: (T, B, D*P), h_n: (D, B, P),
    c_n: (D, B, H) (LSTM, else empty) and the values saved for backward ws: (T, B, D*S*H)
    (empty when nothing is saved; an Elman RNN's under zoneout: its h before zoneout).
    ``kh``, ``kc``: zoneout's keep values of h and the LSTM's c (``_keeps``), or None."""
    ws = None
    if w_ih is None:
        gx = x
    else:
        T, B, _ = x.shape
        D, GH, _ = w_hh.shape
        S = common.SAVED[cell] if save else 0
        if S:
            # the projection goes into the gate blocks of the saved values, which the kernel
            # overwrites with the pre-activations: it takes no tensor of its own
            ws = x.new_empty(T, B, D * S * (GH // common.GATES[cell]),
                             dtype=common.saved_dtype(cell, x.dtype))
            gx = ws[..., : D * GH]
        else:
            gx = x.new_empty(T, B, D * GH)
        if gx.dtype == x.dtype:
            _project_into(gx, x, w_ih, bias)
        else:  # saved in float32 (common.saved_dtype): the projection in the input's dtype
            projected = x.new_empty(T, B, D * GH)
            _project_into(projected, x, w_ih, bias)
            gx.copy_(projected)
    y, h_n, c_n, ws = launch.forward(cell, gx, w_hh, h0, c0, w_hr, b_hn, lengths, reverse,
                                     save=save, ws=ws, dtype=x.dtype, zoneout=_zoneout(kh, kc))
    return y, h_n, _or_empty(c_n, y), ws if ws is not y else y.new_empty(0)


def _zoneout(kh: Tensor | None, kc: Tensor | None) -> tuple[Tensor, ...] | None:
    return None if kh is None else (kh,) if kc is None else (kh, kc)


def _saved_blocks(cell: int, save: bool, kh: Tensor | None) -> int:
    """Blocks of H per direction a forward saves: common.SAVED, or the one an Elman RNN saves
    under zoneout (its h before zoneout)."""
    if not save:
        return 0
    return common.SAVED[cell] or int(kh is not None)


_recurrence = torch.library.custom_op("fastrnn::recurrence", mutates_args=())(_recurrence_impl)


@_recurrence.register_fake
def _(cell, x, w_ih, bias, w_hh, h0, c0, w_hr, b_hn, lengths, reverse, save, kh=None, kc=None):
    T, B, _ = x.shape
    D, GH, P = w_hh.shape
    H = GH // common.GATES[cell]
    S = _saved_blocks(cell, save, kh)
    return (x.new_empty(T, B, D * P), x.new_empty(h0.shape),
            x.new_empty(c0.shape) if c0 is not None else x.new_empty(0),
            x.new_empty(T, B, D * S * H, dtype=common.saved_dtype(cell, x.dtype)) if S
            else x.new_empty(0))


@torch.library.custom_op("fastrnn::recurrence_backward", mutates_args=())
def _recurrence_backward(
    cell: int, dy: Tensor, dh_n: Tensor, dc_n: Tensor | None, w_hh: Tensor, w_hr: Tensor | None,
    h0: Tensor, c0: Tensor | None, y: Tensor, ws: Tensor, lengths: Tensor | None, reverse: int,
    kh: Tensor | None = None, kc: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients through D directions' recurrences -> grads: (T, B, D*W*H) (the gate gradients
    dgx in the first D*G*H columns, then launch.backward's extra blocks), dh0: (D, B, P),
    dc0: (D, B, H) (LSTM, else empty), dhs: (T, B, D*P) (projection, else empty)."""
    grads, dh0, dc0, dhs = launch.backward(
        cell, dy, dh_n, dc_n, w_hh, w_hr, h0, c0, y, ws, lengths, reverse,
        zoneout=_zoneout(kh, kc),
    )
    return grads, dh0, _or_empty(dc0, y), _or_empty(dhs, y)


@_recurrence_backward.register_fake
def _(cell, dy, dh_n, dc_n, w_hh, w_hr, h0, c0, y, ws, lengths, reverse, kh=None, kc=None):
    T, B, _ = y.shape
    D, GH, _ = w_hh.shape
    H = GH // common.GATES[cell]
    return (y.new_empty(T, B, D * common.grad_blocks(cell, w_hr is not None) * H),
            y.new_empty(dh_n.shape),
            y.new_empty(dc_n.shape) if dc_n is not None else y.new_empty(0),
            y.new_empty(y.shape) if w_hr is not None else y.new_empty(0))


def _setup_context(ctx, inputs, output) -> None:
    cell, x, w_ih, bias, w_hh, h0, c0, w_hr, b_hn, lengths, reverse, _, kh, kc = inputs
    y, _, _, ws = output
    ctx.cell, ctx.reverse = cell, reverse
    ctx.b_hn_dtype = None if b_hn is None else b_hn.dtype
    ctx.save_for_backward(w_hh, h0, c0, w_hr, y, ws if _saved_blocks(cell, True, kh) else y,
                          lengths, x, w_ih, bias, b_hn, kh, kc)
    # ws is an output only so that it can be saved: no zero gradient the size of ws for it
    # (autograd's default), and zeros for the other unused outputs only where needed.
    ctx.set_materialize_grads(False)


def _keep_graph() -> bool:
    """Whether the running backward keeps the graph (``retain_graph`` or ``create_graph``)."""
    keep = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if keep is None else keep()


def _overwrite_saved(cell: int, ws: Tensor) -> bool:
    """Whether backward may write its gradients over the saved values, as cuDNN writes over its
    reserve space: only in eager mode, when this backward releases the graph (nothing reads
    them again), so that the gate gradients need no tensor of their own."""
    return (common.SAVED[cell] > 0 and type(ws) is Tensor and not torch.compiler.is_compiling()
            and not _keep_graph())


def _backward(ctx, dy, dh_n, dc_n, _):
    """Gradients of (x, w_ih, bias, w_hh, h0, c0, w_hr, b_hn); the weights' are GEMMs over all
    steps (per direction for the recurrent ones). With ``create_graph=True`` (grad mode on
    here), :func:`fastrnn.ops.second_order.recurrence_backward`."""
    if torch.is_grad_enabled():
        from fastrnn.ops import second_order

        return second_order.recurrence_backward(ctx, dy, dh_n, dc_n)
    w_hh, h0, c0, w_hr, y, ws, lengths, x, w_ih, _, _, kh, kc = ctx.saved_tensors
    x = None if w_ih is None else x
    cell, reverse = ctx.cell, ctx.reverse
    dy = torch.zeros_like(y) if dy is None else dy
    dh_n = y.new_zeros(h0.shape) if dh_n is None else dh_n
    if c0 is not None and dc_n is None:
        dc_n = y.new_zeros(c0.shape)
    args = (cell, dy, dh_n, None if c0 is None else dc_n, w_hh, w_hr, h0, c0, y, ws, lengths,
            reverse, kh, kc)
    if _overwrite_saved(cell, ws):
        grads, dh0, dc0, dhs = launch.backward(*args[:-2], into=ws, zoneout=_zoneout(kh, kc))
        torch.autograd.graph.increment_version(ws)
        if grads.dtype != y.dtype:  # saved in float32 (common.saved_dtype): the sLSTM's gate
            grads = grads[..., : w_hh.shape[0] * w_hh.shape[1]].to(y.dtype)  # blocks only
    else:
        grads, dh0, dc0, dhs = _recurrence_backward(*args)
    need = ctx.needs_input_grad
    D, GH, _ = w_hh.shape
    H = GH // common.GATES[cell]
    # the gate gradients (a strided view when the extra blocks follow them in each row), and
    # the extra block: the GRU's r * dn (W_hn and b_hn's gradient), the projected LSTM's m
    dgx, extras = grads[..., : D * GH], grads[..., D * GH :]
    rec, ys, extra = _directions(dgx, D), _directions(y, D), _directions(extras, D)
    dx = dw_ih = dbias = None
    if w_ih is None:
        dx = dgx if need[1] else None
    else:
        d2 = dgx.reshape(-1, D * GH)
        if need[1]:
            dx = (d2 @ w_ih).view(*x.shape)
        if need[2]:
            dw_ih = d2.t() @ x.reshape(-1, x.shape[-1])
        if need[3]:
            dbias = _sum_steps(dgx)
    dw_hh = None
    if need[4]:
        blocks = [(rec[:, :, d],) if cell != common.GRU else (rec[:, :, d, : 2 * H], extra[:, :, d])
                  for d in range(D)]
        dw_hh = torch.stack([
            _grad_w_hh(blocks[d], ys[:, :, d], h0[d], lengths, common.runs_reversed(reverse, d),
                       w_hh.dtype)
            for d in range(D)
        ])
    dw_hr = None
    if w_hr is not None and need[7]:
        dhs = _directions(dhs, D)
        dw_hr = torch.stack([_gemm_tn(dhs[:, :, d], extra[:, :, d], w_hr.dtype) for d in range(D)])
    db_hn = None
    if need[8]:
        db_hn = _sum_steps(extras).view(D, H).to(ctx.b_hn_dtype)
    return (None, dx, dw_ih, dbias, dw_hh, dh0.to(h0.dtype),
            None if c0 is None else dc0.to(c0.dtype), dw_hr, db_hn, None, None, None, None, None)


_recurrence.register_autograd(_backward, setup_context=_setup_context)


_PLAIN = (Tensor, torch.nn.Parameter)  # no subclass with dispatch of its own (fake, functorch)


def layer(
    mode: str,
    x: Tensor,
    w_hh: Tensor,
    state: tuple[Tensor, ...] | list[Tensor],
    *,
    w_ih: Tensor | None = None,
    bias: Tensor | None = None,
    b_hn: Tensor | None = None,
    w_hr: Tensor | None = None,
    lengths: Tensor | None = None,
    reverse: int = 0,
    zoneout: Sequence[Tensor] | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """All D directions of one layer in one launch (direction 1 runs in reverse; ``reverse``
    HEADS_FORWARD or HEADS_REVERSE: D heads of one direction, see ``kernels.common``), from the
    input x: (T, B, I) projected in the same op by w_ih: (D*G*H, I) and bias: (D*G*H,) (so in
    training the projection is written straight into the values saved for backward), or from
    gx = x: (T, B, D*G*H) when w_ih is None; w_hh: (D, G*H, P), state: (h0,), (h0, c0) or
    (sLSTM) (h0, c0, n0, m0), each (D, B, *), b_hn: (D, H), w_hr: (D, P, H) -> y: (T, B, D*P)
    and the final states (D, B, *). ``zoneout``: keep values of h (and the LSTM's c), each
    broadcastable to (T, B, D*H) (``fastrnn.reference``'s rule per step; no projection)."""
    cell = common.CELLS[mode]
    c0 = None
    if cell == common.LSTM:
        c0 = state[1]
    elif cell == common.SLSTM:  # the kernels' (D, 3, B, H) layout of c, n, m
        c0 = torch.stack(tuple(state[1:]), dim=1)
    kh, kc = _keeps(zoneout, x.shape[0], x.shape[1], w_hh.shape[0] * state[0].shape[-1])
    tensors = (x, w_ih, bias, w_hh, state[0], c0, w_hr, b_hn)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    # Nothing to differentiate or trace (inference, plain tensors, no autocast): the launcher
    # directly, without the custom op's dispatch (tens of microseconds a call, which a
    # decoder's step would pay every step)
    run = _recurrence
    if not save and not torch.compiler.is_compiling() and not torch.is_autocast_enabled(
            x.device.type) and all(t is None or type(t) in _PLAIN for t in tensors):
        run = _recurrence_impl
    y, h_n, c_n, _ = run(cell, x, w_ih, bias, w_hh, state[0], c0, w_hr, b_hn, lengths, reverse,
                         save, kh, kc)
    if c0 is None:
        return y, (h_n,)
    return y, (h_n, *c_n.unbind(1)) if cell == common.SLSTM else (h_n, c_n)


def _keeps(zoneout: Sequence[Tensor] | None, T: int, B: int, width: int,
           ) -> tuple[Tensor | None, Tensor | None]:
    """The kernels' keep tensors of h and c from ``zoneout`` (each broadcastable to
    (T, B, width)): float32 (T, B, width) contiguous (a constant filled in)."""
    if zoneout is None:
        return None, None
    keeps = [t.detach().float().expand(T, B, width) for t in zoneout]
    keeps = [k if k.is_contiguous() else k.contiguous() for k in keeps]
    return keeps[0], keeps[1] if len(keeps) > 1 else None


def _one(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.unsqueeze(0)


def lstm_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hr: Tensor | None = None,
    lengths: Tensor | None = None,
    reverse: bool = False,
    zoneout: Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fused LSTM: gx: (T, B, 4H), w_hh: (4H, P), h0: (B, P), c0: (B, H), w_hr: (P, H) or None;
    zoneout: keep values of h and c (the reference's; no projection).

    Returns y: (T, B, P), h_n: (B, P), c_n: (B, H) in gx.dtype.
    """
    y, (h_n, c_n) = layer("LSTM", gx, w_hh[None], (h0[None], c0[None]), w_hr=_one(w_hr),
                          lengths=lengths, reverse=reverse, zoneout=zoneout)
    return y, h_n[0], c_n[0]


def gru_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    b_hn: Tensor | None,
    h0: Tensor,
    lengths: Tensor | None = None,
    reverse: bool = False,
    zoneout: Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Fused GRU: gx: (T, B, 3H), w_hh: (3H, H), b_hn: (H,) or None, h0: (B, H); zoneout: the
    keep values of h (the reference's).

    Returns y: (T, B, H), h_n: (B, H) in gx.dtype.
    """
    y, (h_n,) = layer("GRU", gx, w_hh[None], (h0[None],), b_hn=_one(b_hn), lengths=lengths,
                      reverse=reverse, zoneout=zoneout)
    return y, h_n[0]


def rnn_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    nonlinearity: str = "tanh",
    lengths: Tensor | None = None,
    reverse: bool = False,
    zoneout: Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Fused Elman RNN (tanh or relu): gx: (T, B, H), w_hh: (H, H), h0: (B, H); zoneout: the
    keep values of h (the reference's).

    Returns y: (T, B, H), h_n: (B, H) in gx.dtype.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
    y, (h_n,) = layer(mode, gx, w_hh[None], (h0[None],), lengths=lengths, reverse=reverse,
                      zoneout=zoneout)
    return y, h_n[0]


def slstm_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    c0: Tensor,
    n0: Tensor,
    m0: Tensor,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Fused sLSTM (:func:`fastrnn.reference.slstm_recurrence`'s equations): gx: (T, B, 4H),
    w_hh: (4H, H), h0, c0, n0, m0: (B, H).

    Returns y: (T, B, H), h_n, c_n, n_n, m_n: (B, H) in gx.dtype.
    """
    y, finals = layer("SLSTM", gx, w_hh[None], tuple(s[None] for s in (h0, c0, n0, m0)),
                      lengths=lengths, reverse=reverse)
    return (y, *(s[0] for s in finals))  # type: ignore[return-value]
