"""The reference recurrence as one opaque op under ``torch.compile``.

Traced, the reference's time loop becomes T copies of the step in the graph: compile time grows
with T (minutes at T = 100). Under ``torch.compile`` :func:`recurrence` runs it as the custom op
``fastrnn::reference_recurrence`` instead, whose backward (``..._backward``) recomputes the
forward with autograd and differentiates it: the graph holds one node per layer and direction
whatever T. Eager calls keep the plain reference (double backward included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from fastrnn import reference
from fastrnn.ops.functional import call_recurrence

__all__ = ["recurrence"]


def _run(mode: str, gx: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor | None,
         w_hr: Tensor | None, b_hn: Tensor | None, lengths: Tensor | None,
         reverse: bool) -> tuple[Tensor, ...]:
    """The reference recurrence -> (y, h_n) or (y, h_n, c_n)."""
    state = [h0] if c0 is None else [h0, c0]
    y, last = call_recurrence(reference, mode, gx, w_hh, state, b_hn, w_hr, lengths, reverse)
    return (y, *last)


@torch.library.custom_op("fastrnn::reference_recurrence", mutates_args=())
def _forward(mode: str, gx: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor | None,
             w_hr: Tensor | None, b_hn: Tensor | None, lengths: Tensor | None,
             reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    """One layer and direction of the reference: -> y: (T, B, P), h_n: (B, P) and c_n: (B, H)
    (LSTM, else empty)."""
    with torch.no_grad():
        out = _run(mode, gx, w_hh, h0, c0, w_hr, b_hn, lengths, reverse)
    return out[0], out[1], out[2] if mode == "LSTM" else out[0].new_empty(0)


@_forward.register_fake
def _(mode, gx, w_hh, h0, c0, w_hr, b_hn, lengths, reverse):
    T, B, _ = gx.shape
    return (gx.new_empty(T, B, h0.shape[-1]), gx.new_empty(h0.shape),
            gx.new_empty(c0.shape) if mode == "LSTM" else gx.new_empty(0))


@contextlib.contextmanager
def _autograd() -> Iterator[None]:
    """Autograd on inside a custom op's implementation, which the dispatcher runs below the
    autograd keys (so that its ops would record nothing)."""
    keys = (torch._C.DispatchKey.AutogradFunctionality, torch._C.DispatchKey.ADInplaceOrView)
    saved = [torch._C._dispatch_tls_is_dispatch_key_excluded(k) for k in keys]
    try:
        for key in keys:
            torch._C._dispatch_tls_set_dispatch_key_excluded(key, False)
        with torch.enable_grad():
            yield
    finally:
        for key, excluded in zip(keys, saved):
            torch._C._dispatch_tls_set_dispatch_key_excluded(key, excluded)


@torch.library.custom_op("fastrnn::reference_recurrence_backward", mutates_args=())
def _backward_op(mode: str, gx: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor | None,
                 w_hr: Tensor | None, b_hn: Tensor | None, lengths: Tensor | None,
                 reverse: bool, dy: Tensor, dh: Tensor, dc: Tensor) -> list[Tensor]:
    """Gradients of (gx, w_hh, h0, c0, w_hr, b_hn) (empty for an absent input), by running
    the forward again with autograd."""
    tensors = [gx, w_hh, h0, c0, w_hr, b_hn]
    with _autograd():
        leaves = [None if t is None else t.detach().requires_grad_() for t in tensors]
        out = _run(mode, *leaves, lengths, reverse)
        grads_out = [dy, dh] + ([dc] if mode == "LSTM" else [])
        present = [t for t in leaves if t is not None]
        found = iter(torch.autograd.grad(out, present, grads_out, allow_unused=True))
    result = []
    for t in leaves:
        g = None if t is None else next(found)
        result.append(gx.new_empty(0) if t is None else (torch.zeros_like(t) if g is None else g))
    return result


@_backward_op.register_fake
def _(mode, gx, w_hh, h0, c0, w_hr, b_hn, lengths, reverse, dy, dh, dc):
    return [gx.new_empty(0) if t is None else torch.empty_like(t)
            for t in (gx, w_hh, h0, c0, w_hr, b_hn)]


def _setup_context(ctx, inputs, output) -> None:
    ctx.mode, ctx.reverse = inputs[0], inputs[8]
    ctx.save_for_backward(*inputs[1:8])


def _backward(ctx, dy, dh, dc):
    gx, w_hh, h0, c0, w_hr, b_hn, lengths = ctx.saved_tensors
    dy = torch.zeros_like(gx[..., : h0.shape[-1]]) if dy is None else dy
    dh = torch.zeros_like(h0) if dh is None else dh
    dc = (torch.zeros_like(c0) if c0 is not None else h0.new_empty(0)) if dc is None else dc
    grads = _backward_op(ctx.mode, gx, w_hh, h0, c0, w_hr, b_hn, lengths, ctx.reverse, dy, dh,
                         dc)
    grads = [None if t is None else g for t, g in zip((gx, w_hh, h0, c0, w_hr, b_hn), grads)]
    return (None, *grads, None, None)


_forward.register_autograd(_backward, setup_context=_setup_context)


def recurrence(mode: str, gx: Tensor, w_hh: Tensor, state: list[Tensor], b_hn: Tensor | None,
               w_hr: Tensor | None, lengths: Tensor | None,
               reverse: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
    """As ``functional.recurrence`` on the reference backend, one opaque op."""
    c0 = state[1] if mode == "LSTM" else None
    y, h, c = _forward(mode, gx, w_hh, state[0], c0, w_hr, b_hn, lengths, reverse)
    return y, (h, c) if mode == "LSTM" else (h,)
