"""The LayerNorm layers on the triton backend: one fused launch per layer for all its
directions (``fastrnn.kernels.layer_norm``), the input side's norm in torch before it (its
gradient by autograd), and one fused launch for the recurrence's backward
(``fastrnn.kernels.layer_norm_backward``), the parameters' gradients sums over its results.

:func:`fusable` says when a call may take them (not traced by torch.compile, one head), else
the reference runs; zoneout's masks go into the kernels. A backward with ``create_graph=True``
differentiates the layer again on the reference recurrences (as the other fused layers do).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["fusable", "layer"]


def fusable(num_heads: int) -> str | None:
    """None when the fused LayerNorm kernels serve a call, else why not."""
    if torch.compiler.is_compiling():
        return "layer normalisation under torch.compile: the fused LayerNorm kernels are no op yet"
    if num_heads > 1:
        return "layer normalisation over several heads"
    return None


def layer(
    mode: str, x: Tensor, per_direction: list[tuple], state: list[Tensor],
    lengths: Tensor | None, norms: list[tuple], project: object,
    keeps: list[Tensor] | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One LayerNorm layer, every direction in one launch: x: (T, B, I), per_direction: each
    direction's (w_ih, w_hh, b_ih, b_hh, w_hr), state entries (D, B, H), norms: each
    direction's (config, weights) (see ``functional.LayerNormConfig``); ``project`` is
    ``functional._normalised_projection``; ``keeps``: zoneout's keep values of h (and c), each
    (T, B, D*H) (``functional._zoneout_keeps``) -> (T, B, D*H) and the final states
    (D, B, H)."""
    from fastrnn.kernels import common
    from fastrnn.kernels.layer_norm import ln_forward
    from fastrnn.ops import triton_ops

    cell = common.CELLS[mode]
    gxs, b_hns, recurrent = [], [], []
    for (w_ih, _, b_ih, b_hh, _), (config, weights) in zip(per_direction, norms):
        gx, b_hn, norm = project(x, w_ih, b_ih, b_hh, mode, config, weights)
        gxs.append(gx)
        b_hns.append(b_hn)
        recurrent.append(norm)
    norm = recurrent[0]
    dtype = x.dtype

    def stacked(tensors: list[Tensor | None]) -> Tensor | None:
        return None if tensors[0] is None else torch.stack([t.to(dtype) for t in tensors])

    gx = gxs[0] if len(gxs) == 1 else torch.cat(gxs, dim=2)
    tensors = (gx.to(dtype), stacked([w[1] for w in per_direction]),
               stacked([n.weight_hh for n in recurrent]), state[0],
               state[1] if cell == common.LSTM else None,
               stacked([n.weight_c for n in recurrent]), stacked([n.bias_c for n in recurrent]),
               stacked(b_hns))
    options = (lengths, norm.eps, norm.per_gate, norm.cell if cell == common.LSTM else None)
    kh, kc = triton_ops._keeps(keeps, *gx.shape[:2], state[0].shape[0] * state[0].shape[-1])
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        y, h_n, c_n = _FusedNorm.apply(cell, *tensors, *options, kh, kc)
    else:
        y, h_n, c_n, _, _ = ln_forward(cell, *_forward_args(tensors, options),
                                       zoneout=triton_ops._zoneout(kh, kc))
    return y, (h_n,) if cell != common.LSTM else (h_n, c_n)


def _forward_args(tensors: tuple, options: tuple) -> tuple:
    """``ln_forward``'s arguments after the cell from the op's tensors and options."""
    gx, w_hh, gain, h0, c0, weight_c, bias_c, b_hn = tensors
    lengths, eps, per_gate, cell_norm = options
    return (gx, w_hh, gain, h0, c0, weight_c, bias_c, b_hn, lengths, 0, eps, per_gate, cell_norm)


def _sum_rows(t: Tensor) -> Tensor:
    """(T, B, ...) -> (...): the sum over steps and rows."""
    return t.sum(dim=(0, 1))


class _FusedNorm(torch.autograd.Function):
    """The fused LayerNorm recurrence of D directions: (gx, W_hh, gain, h0, c0, weight_c,
    bias_c, b_hn) -> (y, h_n, c_n), shapes as ``ln_forward``'s (c_n empty for a GRU)."""

    @staticmethod
    def forward(ctx, cell, gx, w_hh, gain, h0, c0, weight_c, bias_c, b_hn, lengths, eps,
                per_gate, cell_norm, kh, kc):
        from fastrnn.kernels.layer_norm import ln_forward
        from fastrnn.ops import triton_ops

        tensors = (gx, w_hh, gain, h0, c0, weight_c, bias_c, b_hn)
        options = (lengths, eps, per_gate, cell_norm)
        y, h_n, c_n, ws, st = ln_forward(cell, *_forward_args(tensors, options), save=True,
                                         zoneout=triton_ops._zoneout(kh, kc))
        ctx.cell, ctx.options = cell, options
        ctx.save_for_backward(*tensors, y, ws, st, lengths, kh, kc)
        return y, h_n, y.new_zeros(0) if c_n is None else c_n

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n):
        from fastrnn.kernels import common
        from fastrnn.kernels.layer_norm_backward import ln_backward
        from fastrnn.ops import triton_ops
        from fastrnn.ops.triton_ops import _grad_w_hh

        gx, w_hh, gain, h0, c0, weight_c, bias_c, b_hn, y, ws, st, _, kh, kc = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: differentiable, on the reference
            return _differentiable_backward(ctx, dy, dh_n, dc_n)
        cell, (lengths, _, per_gate, cell_norm) = ctx.cell, ctx.options
        D, GH, H = w_hh.shape
        G = GH // H
        dy = torch.zeros_like(y) if dy is None else dy
        dh_n = torch.zeros_like(h0) if dh_n is None else dh_n
        if c0 is not None and dc_n is None:
            dc_n = torch.zeros_like(c0)
        grads, dh0, dc0 = ln_backward(cell, dy, dh_n, dc_n if c0 is not None else None, w_hh,
                                      gain, weight_c, bias_c, h0, c0, y, ws, st, lengths, 0,
                                      per_gate, cell_norm, zoneout=triton_ops._zoneout(kh, kc))
        T, B = y.shape[:2]
        dgx = grads[:, :, :, :G].reshape(T, B, D * GH).to(gx.dtype)
        da = grads[:, :, :, G : 2 * G]
        ys = y.view(T, B, D, H)
        dw_hh = torch.stack([
            _grad_w_hh((da[:, :, d].reshape(T, B, GH),), ys[:, :, d], h0[d], lengths,
                       common.runs_reversed(0, d), w_hh.dtype) for d in range(D)])
        drec = grads[:, :, :, :G]  # the gradients of gain * x^: the gates' (LSTM)
        if cell == common.GRU:  # the n block's is r * dn
            drec = torch.cat([grads[:, :, :, :2], grads[:, :, :, 2 * G :]], dim=3)
        dgain = _sum_rows(drec * ws[:, :, :, G : 2 * G]).reshape(D, GH).to(gain.dtype)
        dwc = dbc = db_hn = None
        if weight_c is not None and cell_norm is not None:
            dout = grads[:, :, :, 2 * G]
            dwc = _sum_rows(dout * ws[:, :, :, 2 * G + 1]).to(weight_c.dtype)
            dbc = _sum_rows(dout).to(bias_c.dtype)
        if b_hn is not None:
            db_hn = _sum_rows(grads[:, :, :, 2 * G]).to(b_hn.dtype)
        return (None, dgx, dw_hh, dgain, dh0.to(h0.dtype),
                None if c0 is None else dc0.to(c0.dtype), dwc, dbc, db_hn, None, None, None,
                None, None, None)


def _differentiable_backward(ctx, dy, dh_n, dc_n) -> tuple:
    """Backward with ``create_graph=True``: the layer again on the reference recurrences, which
    autograd differentiates to any order, and its gradients with a graph of their own."""
    from fastrnn import reference
    from fastrnn.kernels import common
    from fastrnn.ops.second_order import differentiable_grads, direction_keep

    gx, w_hh, gain, h0, c0, weight_c, bias_c, b_hn, *_, kh, kc = ctx.saved_tensors
    lengths, eps, per_gate, cell_norm = ctx.options
    D, GH, _ = w_hh.shape
    outs, finals = [], []
    for d in range(D):
        norm = reference.RecurrentNorm(gain[d], None if weight_c is None else weight_c[d],
                                       None if bias_c is None else bias_c[d], eps, per_gate,
                                       cell_norm)
        g = gx[..., d * GH : (d + 1) * GH]
        keep = None if kh is None else [direction_keep(k, d, D)
                                        for k in (kh, kc) if k is not None]
        if ctx.cell == common.LSTM:
            y_d, *last = reference.lstm_recurrence(g, w_hh[d], h0[d], c0[d], None, lengths,
                                                   d == 1, norm=norm, zoneout=keep)
        else:
            y_d, *last = reference.gru_recurrence(g, w_hh[d], None if b_hn is None else b_hn[d],
                                                  h0[d], lengths, d == 1, norm=norm,
                                                  zoneout=keep)
        outs.append(y_d)
        finals.append(last)
    outputs = [torch.cat(outs, dim=-1), torch.stack([f[0] for f in finals])]
    grads_out = [dy, dh_n]
    if c0 is not None:
        outputs.append(torch.stack([f[1] for f in finals]))
        grads_out.append(dc_n)
    grads = differentiable_grads(ctx.needs_input_grad[1:], outputs, grads_out,
                                 (gx, w_hh, gain, h0, c0, weight_c, bias_c, b_hn))
    return (None, *grads, None, None, None, None, None, None)
