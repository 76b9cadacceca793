"""The functional API: whole RNN stacks and single cells on the reference or triton backend.

The layer loop, the input projection (one GEMM per layer and direction, biases folded in) and
inter-layer dropout live here; the time loop is a *recurrence* with the signature shared by
:mod:`fastrnn.reference` and the Triton launchers, picked by backend name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fastrnn import reference
from fastrnn.ops.backend import BackendUnavailableError

__all__ = ["MODES", "input_projection", "recurrence", "rnn", "rnn_cell", "num_gates"]

MODES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def num_gates(mode: str) -> int:
    """Gate count of a cell: 4 (LSTM), 3 (GRU) or 1 (RNN)."""
    return _GATES[mode]


def input_projection(
    x: Tensor, w_ih: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, mode: str
) -> tuple[Tensor, Tensor | None]:
    """One GEMM for all steps: x: (T, B, I) -> gx: (T, B, G), plus GRU's b_hn: (H,) or None.

    Both biases are folded into gx, except GRU's b_hn, which the recurrence applies inside
    the reset gate.
    """
    b_hn = None
    bias = None
    if b_ih is not None and b_hh is not None:
        if mode == "GRU":
            H = b_hh.shape[0] // 3
            b_hn = b_hh[2 * H :]
            bias = b_ih + torch.cat([b_hh[: 2 * H], torch.zeros_like(b_hn)])
        else:
            bias = b_ih + b_hh
    T, B, I = x.shape
    x2 = x.reshape(T * B, I)
    gx = x2 @ w_ih.t() if bias is None else torch.addmm(bias, x2, w_ih.t())
    return gx.view(T, B, w_ih.shape[0]), b_hn


def _recurrences(backend: str) -> object:
    if backend == "reference":
        return reference
    if backend == "triton":
        try:
            from fastrnn.ops import triton_ops
        except ImportError as exc:  # kernels not built for this cell yet
            raise BackendUnavailableError(f"the triton backend is unavailable: {exc}") from exc
        return triton_ops
    raise ValueError(f"no recurrence for backend {backend!r}")


def recurrence(
    backend: str,
    mode: str,
    gx: Tensor,
    w_hh: Tensor,
    state: Sequence[Tensor],
    *,
    b_hn: Tensor | None = None,
    w_hr: Tensor | None = None,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one layer and direction's time loop: gx: (T, B, G) -> (y: (T, B, P), final state)."""
    impl = _recurrences(backend)
    if mode == "LSTM":
        y, h, c = impl.lstm_recurrence(gx, w_hh, state[0], state[1], w_hr, lengths, reverse)
        return y, (h, c)
    if mode == "GRU":
        y, h = impl.gru_recurrence(gx, w_hh, b_hn, state[0], lengths, reverse)
        return y, (h,)
    act = "tanh" if mode == "RNN_TANH" else "relu"
    y, h = impl.rnn_recurrence(gx, w_hh, state[0], act, lengths, reverse)
    return y, (h,)


def _layer_weights(
    weights: Sequence[Tensor], layer: int, direction: int, num_directions: int, bias: bool,
    proj: bool,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    per = 2 + 2 * bias + proj
    w = list(weights[(layer * num_directions + direction) * per :][:per])
    w_ih, w_hh = w[0], w[1]
    b_ih, b_hh = (w[2], w[3]) if bias else (None, None)
    w_hr = w[-1] if proj else None
    return w_ih, w_hh, b_ih, b_hh, w_hr


def rnn(
    mode: str,
    input: Tensor,
    hx: Sequence[Tensor],
    weights: Sequence[Tensor],
    *,
    bias: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
    proj_size: int = 0,
    lengths: Tensor | None = None,
    backend: str = "reference",
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """A whole stack, time-major: input: (T, B, I), hx: (h0,) or (h0, c0) each (L*D, B, *).

    ``weights`` is the flat list in torch.nn's registration order. ``lengths: (B,)`` makes each
    sequence stop at its own length (padded outputs are zero). Returns ``output: (T, B, D*P)``
    and the final states stacked like ``hx``. The reference backend computes in float32 or
    better and returns ``input.dtype``.
    """
    if input.size(0) == 0:
        raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
    dtype = input.dtype
    if backend == "reference":
        work = torch.promote_types(dtype, torch.float32)
        input = input.to(work)
        weights = [w.to(work) for w in weights]
        hx = [h.to(work) for h in hx]
    D = 2 if bidirectional else 1
    x = input
    finals: list[list[Tensor]] = [[] for _ in hx]
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            w_ih, w_hh, b_ih, b_hh, w_hr = _layer_weights(weights, layer, d, D, bias, proj_size > 0)
            gx, b_hn = input_projection(x, w_ih, b_ih, b_hh, mode)
            state = [h[layer * D + d] for h in hx]
            y, last = recurrence(
                backend, mode, gx, w_hh, state, b_hn=b_hn, w_hr=w_hr, lengths=lengths,
                reverse=d == 1,
            )
            outs.append(y)
            for acc, s in zip(finals, last):
                acc.append(s)
        x = outs[0] if D == 1 else torch.cat(outs, dim=2)
        if dropout > 0 and training and layer < num_layers - 1:
            x = F.dropout(x, p=dropout, training=True)
    return x.to(dtype), tuple(torch.stack(f).to(dtype) for f in finals)


def rnn_cell(
    mode: str,
    input: Tensor,
    hx: Sequence[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    backend: str = "reference",
) -> tuple[Tensor, ...]:
    """One step: input: (B, I), hx: (h,) or (h, c) each (B, H) -> the new state tuple."""
    dtype = input.dtype
    weights = [w for w in (w_ih, w_hh, b_ih, b_hh) if w is not None]
    _, last = rnn(
        mode, input.unsqueeze(0), [h.unsqueeze(0) for h in hx], weights, bias=b_ih is not None,
        num_layers=1, dropout=0.0, training=False, bidirectional=False, backend=backend,
    )
    return tuple(s.squeeze(0).to(dtype) for s in last)

