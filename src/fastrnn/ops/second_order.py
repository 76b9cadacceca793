"""Second derivatives of the fused ops: their backward with ``create_graph=True`` runs the
layer again on the reference recurrences, which autograd differentiates to any order."""

from __future__ import annotations

import torch
from torch import Tensor

from fastrnn.kernels import common

__all__ = ["differentiable_grads", "direction_keep", "recurrence_backward"]

_MODES = {code: mode for mode, code in common.CELLS.items()}


def recurrence_backward(ctx, dy, dh_n, dc_n) -> tuple:
    """The fused recurrence's backward with ``create_graph=True`` (double backward,
    Hessian-vector products; ``ctx`` as ``triton_ops._setup_context`` fills it): the layer
    again on the reference recurrences with the forward's zoneout masks, which autograd
    differentiates to any order, and its gradients with a graph of their own."""
    from fastrnn.ops import functional

    w_hh, h0, c0, w_hr, _, _, lengths, x, w_ih, bias, b_hn, kh, kc = ctx.saved_tensors
    mode, D = _MODES[ctx.cell], w_hh.shape[0]
    gx = x if w_ih is None else functional._project(x, w_ih, bias)
    GH = w_hh.shape[1]
    ys, finals = [], []
    for d in range(D):
        cells = [] if c0 is None else list(c0[d].unbind(0)) if c0.dim() == 4 else [c0[d]]
        state = [h0[d], *cells]
        keep = None if kh is None else [direction_keep(k, d, D)
                                        for k in (kh, kc) if k is not None]
        y_d, last = functional.recurrence(
            "reference", mode, gx[..., d * GH : (d + 1) * GH], w_hh[d], state,
            b_hn=None if b_hn is None else b_hn[d], w_hr=None if w_hr is None else w_hr[d],
            lengths=lengths, reverse=common.runs_reversed(ctx.reverse, d), zoneout=keep)
        ys.append(y_d)
        finals.append(last)
    outputs = [torch.cat(ys, dim=-1), torch.stack([f[0] for f in finals])]
    grads_out = [dy, dh_n]
    if c0 is not None:  # the cell states, laid out as c0
        outputs.append(torch.stack([torch.stack(f[1:]) if c0.dim() == 4 else f[1]
                                    for f in finals]))
        grads_out.append(dc_n)
    grads = differentiable_grads(ctx.needs_input_grad[1:], outputs, grads_out,
                                 (x, w_ih, bias, w_hh, h0, c0, w_hr, b_hn))
    return (None, *grads, None, None, None, None, None)


def direction_keep(k: Tensor, d: int, D: int) -> Tensor:
    """Direction ``d``'s keep values (T, B, X) of a launch's (T, B, D*X) (``triton_ops._keeps``)."""
    return k.view(*k.shape[:2], D, -1)[:, :, d]


def differentiable_grads(needs: tuple, outputs: list, grads_out: list,
                         inputs: tuple) -> list:
    """The gradients of ``inputs`` whose ``needs`` flag is set (the others None) from the
    recomputed ``outputs`` and their incoming ``grads_out``, with a graph of their own (zeros
    for an input the outputs do not depend on)."""
    wanted = [i for i, t in enumerate(inputs) if t is not None and needs[i]]
    pairs = [(o, g) for o, g in zip(outputs, grads_out) if g is not None]
    found = torch.autograd.grad([o for o, _ in pairs], [inputs[i] for i in wanted],
                                [g for _, g in pairs], create_graph=True, allow_unused=True)
    grads: list = [None] * len(inputs)
    for i, g in zip(wanted, found):
        grads[i] = torch.zeros_like(inputs[i]) if g is None else g.to(inputs[i].dtype)
    return grads
