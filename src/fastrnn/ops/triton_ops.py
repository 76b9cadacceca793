"""The triton backend: the fused recurrence kernels of :mod:`fastrnn.kernels` as custom ops.

``lstm_recurrence``, ``gru_recurrence`` and ``rnn_recurrence`` share the signatures and the
semantics of :mod:`fastrnn.reference`. Forward runs one kernel launch per layer and direction
(the time loop inside the kernel; on the split path without a grid barrier, one launch per
phase, see :mod:`fastrnn.kernels.split`). Backward runs one reverse-time kernel for the gate
gradients ``dgx`` (which are also the gradient of the input projection), dh0 and dc0; the weight
and bias gradients are GEMMs over all steps in torch. Both launchers are custom ops
(``fastrnn::recurrence``, ``fastrnn::recurrence_backward``) with fake implementations and a
registered autograd formula, so ``torch.compile`` traces them without graph breaks.

Memory saved for backward, per layer and direction, in the input dtype (cuDNN keeps a reserve
space of gate activations and cell states per step of the same order, also in the input dtype):

- LSTM: i, f, g, o and c for every step, ``5 * T * B * H`` values, plus the output y that is
  returned anyway; with a projection, m = o * tanh(c) is recomputed from o and c for dW_hr.
- GRU: r, z, n and ``h W_hn^T + b_hn``, ``4 * T * B * H`` values, plus y.
- Elman RNN: nothing beyond y (the activation's derivative comes from the output).

Saving instead of recomputing keeps backward at one recurrent product per step (recomputing
the gates would need a second one per step, i.e. a forward pass inside backward, to save the
4H/3H values). Under ``torch.no_grad``/``inference_mode`` nothing is saved.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from fastrnn.ops.backend import BackendUnavailableError

try:
    from fastrnn.kernels import common, launch
except ImportError as exc:  # no triton on this platform
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

__all__ = ["gru_recurrence", "lstm_recurrence", "rnn_recurrence", "unsupported_reason"]

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def unsupported_reason(
    mode: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    hidden_size: int,
    proj_size: int,
    packed: bool,
    requires_grad: bool,
) -> str | None:
    """None when the fused kernels serve this configuration, else the reason they cannot.

    Raises BackendUnavailableError when the triton backend cannot run here at all (no triton,
    or neither a CUDA device nor ``TRITON_INTERPRET=1``). Packed input and autograd are always
    served (``packed``/``requires_grad`` are part of the dispatcher's protocol).
    """
    if _IMPORT_ERROR is not None:
        raise BackendUnavailableError(f"the triton backend needs triton: {_IMPORT_ERROR}")
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise BackendUnavailableError(
            f"the triton backend needs a CUDA device (or TRITON_INTERPRET=1), got {device.type}"
        )
    if dtype not in DTYPES:
        return f"dtype {dtype} (fused kernels take float32, float16, bfloat16)"
    return None


def _previous_h(y: Tensor, h0: Tensor, lengths: Tensor | None, reverse: bool) -> Tensor:
    """The h each step started from, per time position: (T, B, P)."""
    if not reverse:
        return torch.cat([h0.unsqueeze(0).to(y.dtype), y[:-1]])
    shifted = torch.cat([y[1:], h0.unsqueeze(0).to(y.dtype)])
    if lengths is None:
        return shifted
    steps = torch.arange(y.shape[0], device=y.device).unsqueeze(1)
    last = steps == (lengths.to(y.device) - 1).unsqueeze(0)
    return torch.where(last.unsqueeze(2), h0.unsqueeze(0).to(y.dtype), shifted)


def _gemm_tn(a: Tensor, b: Tensor, dtype: torch.dtype) -> Tensor:
    """sum over steps and rows of a^T b: a: (T, B, M), b: (T, B, N) -> (M, N) in ``dtype``."""
    return (a.reshape(-1, a.shape[-1]).t() @ b.reshape(-1, b.shape[-1]).to(a.dtype)).to(dtype)


def _or_empty(t: Tensor | None, like: Tensor) -> Tensor:
    """A custom op returns tensors only: an absent result is an empty one."""
    return like.new_empty(0) if t is None else t


@torch.library.custom_op("fastrnn::recurrence", mutates_args=())
def _recurrence(
    cell: int, gx: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor | None, w_hr: Tensor | None,
    b_hn: Tensor | None, lengths: Tensor | None, reverse: bool, save: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One layer and direction of any cell -> y: (T, B, P), h_n: (B, P), c_n: (B, H) (LSTM,
    else empty) and the saved activations ws: (T, B, S*H) (empty when nothing is saved)."""
    y, h_n, c_n, ws = launch.forward(cell, gx, w_hh, h0, c0, w_hr, b_hn, lengths, reverse,
                                     save=save)
    return y, h_n, _or_empty(c_n, gx), ws if ws is not y else gx.new_empty(0)


@_recurrence.register_fake
def _(cell, gx, w_hh, h0, c0, w_hr, b_hn, lengths, reverse, save):
    T, B, GH = gx.shape
    H = GH // common.GATES[cell]
    S = common.SAVED[cell] if save else 0
    return (gx.new_empty(T, B, h0.shape[1]), gx.new_empty(h0.shape),
            gx.new_empty(B, H) if c0 is not None else gx.new_empty(0),
            gx.new_empty(T, B, S * H) if S else gx.new_empty(0))


@torch.library.custom_op("fastrnn::recurrence_backward", mutates_args=())
def _recurrence_backward(
    cell: int, dy: Tensor, dh_n: Tensor, dc_n: Tensor | None, w_hh: Tensor, w_hr: Tensor | None,
    h0: Tensor, c0: Tensor | None, y: Tensor, ws: Tensor, lengths: Tensor | None, reverse: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients through the recurrence -> dgx: (T, B, G*H), dh0: (B, P), dc0: (B, H) (LSTM,
    else empty), dhs: (T, B, P) (projection, else empty)."""
    dgx, dh0, dc0, dhs = launch.backward(
        cell, dy, dh_n, dc_n, w_hh, w_hr, h0, c0, y, ws, lengths, reverse
    )
    return dgx, dh0, _or_empty(dc0, y), _or_empty(dhs, y)


@_recurrence_backward.register_fake
def _(cell, dy, dh_n, dc_n, w_hh, w_hr, h0, c0, y, ws, lengths, reverse):
    T, B, _ = y.shape
    return (y.new_empty(T, B, w_hh.shape[0]), y.new_empty(dh_n.shape),
            y.new_empty(B, w_hh.shape[0] // 4) if dc_n is not None else y.new_empty(0),
            y.new_empty(y.shape) if w_hr is not None else y.new_empty(0))


def _setup_context(ctx, inputs, output) -> None:
    cell, _, w_hh, h0, c0, w_hr, b_hn, lengths, reverse, _ = inputs
    y, _, _, ws = output
    ctx.cell, ctx.reverse = cell, reverse
    ctx.b_hn_dtype = None if b_hn is None else b_hn.dtype
    ctx.save_for_backward(w_hh, h0, c0, w_hr, y, ws if common.SAVED[cell] else y, lengths)


def _backward(ctx, dy, dh_n, dc_n, _):
    """Gradients of (gx, w_hh, h0, c0, w_hr, b_hn); the weights' are GEMMs over all steps."""
    w_hh, h0, c0, w_hr, y, ws, lengths = ctx.saved_tensors
    cell, reverse = ctx.cell, ctx.reverse
    dgx, dh0, dc0, dhs = _recurrence_backward(
        cell, dy, dh_n, None if c0 is None else dc_n, w_hh, w_hr, h0, c0, y, ws, lengths, reverse
    )
    need = ctx.needs_input_grad
    H = w_hh.shape[0] // common.GATES[cell]
    rec = dgx
    if cell == common.GRU:  # the n gate's recurrent part sits behind r
        rec = torch.cat([dgx[..., : 2 * H], dgx[..., 2 * H :] * ws[..., :H]], dim=2)
    dw_hh = _gemm_tn(rec, _previous_h(y, h0, lengths, reverse), w_hh.dtype) if need[2] else None
    dw_hr = None
    if w_hr is not None and need[5]:
        m = ws[..., 3 * H : 4 * H].float() * torch.tanh(ws[..., 4 * H : 5 * H].float())
        dw_hr = _gemm_tn(dhs.float(), m, w_hr.dtype)
    db_hn = rec[..., 2 * H :].float().sum((0, 1)).to(ctx.b_hn_dtype) if need[6] else None
    return (None, dgx if need[1] else None, dw_hh, dh0.to(h0.dtype),
            None if c0 is None else dc0.to(c0.dtype), dw_hr, db_hn, None, None, None)


_recurrence.register_autograd(_backward, setup_context=_setup_context)


def _run(
    cell: int, gx: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor | None, w_hr: Tensor | None,
    b_hn: Tensor | None, lengths: Tensor | None, reverse: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    tensors = (gx, w_hh, h0, c0, w_hr, b_hn)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    y, h_n, c_n, _ = _recurrence(cell, gx, w_hh, h0, c0, w_hr, b_hn, lengths, reverse, save)
    return y, h_n, None if c0 is None else c_n


def lstm_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hr: Tensor | None = None,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fused LSTM: gx: (T, B, 4H), w_hh: (4H, P), h0: (B, P), c0: (B, H), w_hr: (P, H) or None.

    Returns y: (T, B, P), h_n: (B, P), c_n: (B, H) in gx.dtype.
    """
    y, h_n, c_n = _run(common.LSTM, gx, w_hh, h0, c0, w_hr, None, lengths, reverse)
    return y, h_n, c_n  # type: ignore[return-value]


def gru_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    b_hn: Tensor | None,
    h0: Tensor,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """Fused GRU: gx: (T, B, 3H), w_hh: (3H, H), b_hn: (H,) or None, h0: (B, H).

    Returns y: (T, B, H), h_n: (B, H) in gx.dtype.
    """
    y, h_n, _ = _run(common.GRU, gx, w_hh, h0, None, None, b_hn, lengths, reverse)
    return y, h_n


def rnn_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    nonlinearity: str = "tanh",
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """Fused Elman RNN (tanh or relu): gx: (T, B, H), w_hh: (H, H), h0: (B, H).

    Returns y: (T, B, H), h_n: (B, H) in gx.dtype.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    cell = common.RNN_TANH if nonlinearity == "tanh" else common.RNN_RELU
    y, h_n, _ = _run(cell, gx, w_hh, h0, None, None, None, lengths, reverse)
    return y, h_n
