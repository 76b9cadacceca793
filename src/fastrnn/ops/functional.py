"""The functional API: whole RNN stacks and single cells on the reference or triton backend.

The layer loop, the input projection (one GEMM per layer, biases folded in) and inter-layer
dropout live here; the time loop is a *recurrence* with the signature shared by
:mod:`fastrnn.reference` and the Triton launchers, picked by backend name. The reference runs
a layer's directions one after the other; the triton backend projects the input for both
directions in one GEMM and runs both recurrences in one launch (``triton_ops.layer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from fastrnn import reference
from fastrnn.ops import fused_norm
from fastrnn.ops.backend import BackendUnavailableError, warn_once

__all__ = [
    "MODES", "LayerNormConfig", "block_diagonal", "call_recurrence", "check_tensors",
    "input_projection", "num_gates", "num_states", "recurrence", "rnn", "rnn_cell",
    "scalar_name", "zoneout_keep", "zoneout_unfusable",
]

MODES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU", "SLSTM")
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1, "SLSTM": 4}
_STATES = {"LSTM": 2, "GRU": 1, "RNN_TANH": 1, "RNN_RELU": 1, "SLSTM": 4}


class LayerNormConfig(NamedTuple):
    """Layer normalisation in a stack (see :class:`fastrnn.LayerNormLSTM`): ``weights`` per
    layer and direction in registration order, ``ln_weight_ih: (G*H,)``, ``ln_weight_hh:
    (G*H,)`` and, for an LSTM with a cell norm, ``ln_weight_c, ln_bias_c: (H,)``; ``eps``,
    ``per_gate`` and ``cell`` as :class:`fastrnn.reference.RecurrentNorm`'s."""

    weights: Sequence[Tensor]
    eps: float = 1e-5
    per_gate: bool = False
    cell: str | None = "output"

    def per_layer(self) -> int:
        """Tensors per layer and direction."""
        return 2 + 2 * (self.cell is not None)


def block_diagonal(w_hh: Tensor, num_heads: int) -> Tensor:
    """The dense recurrent matrix ``(G*H, H)`` of ``w_hh: (G*H, H/N)``, N heads' blocks:
    rows ``g*H + n*D .. g*H + (n+1)*D`` of ``w_hh`` are gate g's ``D x D`` block for head n
    (D = H/N), placed at columns ``n*D .. (n+1)*D``, exact zeros elsewhere (differentiable:
    its gradient is the blocks')."""
    if num_heads == 1:
        return w_hh
    D = w_hh.shape[1]
    G = w_hh.shape[0] // (num_heads * D)
    heads = torch.arange(num_heads, device=w_hh.device)
    dense = w_hh.new_zeros(G, num_heads, D, num_heads, D)
    # exact zeros off the blocks (a product with an identity would spread inf/NaN there)
    dense[:, heads, :, heads, :] = w_hh.reshape(G, num_heads, D, D).transpose(0, 1)
    return dense.reshape(G * num_heads * D, num_heads * D)


def num_gates(mode: str) -> int:
    """Gate count of a cell: 4 (LSTM, sLSTM), 3 (GRU) or 1 (RNN)."""
    return _GATES[mode]


def num_states(mode: str) -> int:
    """States a cell carries: 1 (h: GRU, RNN), 2 (h, c: LSTM), 4 (h, c, n, m: sLSTM)."""
    return _STATES[mode]


def _fold_bias(
    b_ih: Tensor | None, b_hh: Tensor | None, mode: str
) -> tuple[Tensor | None, Tensor | None]:
    """The bias folded into the input projection, and GRU's b_hn: (H,) (or None), which the
    recurrence applies inside the reset gate."""
    if b_ih is None or b_hh is None:
        return None, None
    if mode == "GRU":
        H = b_hh.shape[0] // 3
        b_hn = b_hh[2 * H :]
        return b_ih + torch.cat([b_hh[: 2 * H], torch.zeros_like(b_hn)]), b_hn
    return b_ih + b_hh, None


def _project(x: Tensor, w_ih: Tensor, bias: Tensor | None) -> Tensor:
    """x: (T, B, I) @ w_ih^T (+ bias) -> (T, B, w_ih.shape[0]), one GEMM."""
    T, B, I = x.shape
    x2 = x.reshape(T * B, I)
    gx = x2 @ w_ih.t() if bias is None else torch.addmm(bias, x2, w_ih.t())
    return gx.view(T, B, w_ih.shape[0])


def input_projection(
    x: Tensor, w_ih: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, mode: str
) -> tuple[Tensor, Tensor | None]:
    """One GEMM for all steps: x: (T, B, I) -> gx: (T, B, G), plus GRU's b_hn: (H,) or None.

    Both biases are folded into gx, except GRU's b_hn, which the recurrence applies inside
    the reset gate.
    """
    bias, b_hn = _fold_bias(b_ih, b_hh, mode)
    return _project(x, w_ih, bias), b_hn


def check_tensors(input: Tensor, hx: Sequence[Tensor], weights: Sequence[Tensor]) -> str | None:
    """None when the states and weights are on ``input``'s device and the states share its
    dtype (any dtype under autocast), else what is wrong, in the words of torch's own RNN
    check (hidden states first, then parameters)."""
    device = input.device
    for name, tensors in (("hidden", hx), ("parameter", weights)):
        for t in tensors:
            if t.device != device:
                return (f"Input and {name} tensors are not at the same device, found input "
                        f"tensor at {device} and {name} tensor at {t.device}")
    if not torch._C._is_any_autocast_enabled():
        for h in hx:
            if h.dtype != input.dtype:
                return ("Input and hidden tensors are not the same dtype, found input tensor "
                        f"with {scalar_name(input.dtype)} and hidden tensor with "
                        f"{scalar_name(h.dtype)}")
    return None


_SCALAR_NAMES = {
    torch.float64: "Double", torch.float32: "Float", torch.float16: "Half",
    torch.bfloat16: "BFloat16", torch.int64: "Long", torch.int32: "Int", torch.int16: "Short",
    torch.int8: "Char", torch.uint8: "Byte", torch.bool: "Bool",
    torch.complex64: "ComplexFloat", torch.complex128: "ComplexDouble",
}


def scalar_name(dtype: torch.dtype) -> str:
    """torch's C++ name of a dtype (Float, Double, Long, ...), as its error messages give it."""
    return _SCALAR_NAMES.get(dtype, str(dtype))


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
    zoneout: Sequence[Tensor] | None = None,
    norm: reference.RecurrentNorm | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one layer and direction's time loop: gx: (T, B, G) -> (y: (T, B, P), final state).
    ``zoneout``: keep tensors per state entry (reference and triton, without a projection on
    triton); ``norm``: the recurrent layer normalisation (reference only); see
    ``reference._scan`` and :class:`fastrnn.reference.RecurrentNorm`. Under torch.compile the
    reference's plain loop is one opaque op (see :mod:`fastrnn.ops.opaque`)."""
    extra = {name: value for name, value in (("zoneout", zoneout), ("norm", norm))
             if value is not None}
    for name in extra:
        if backend != "reference" and not (name == "zoneout" and backend == "triton"):
            raise ValueError(f"{name} runs on the reference backend, not {backend!r}")
    if (backend == "reference" and not extra and mode != "SLSTM"
            and torch.compiler.is_compiling()):
        from fastrnn.ops import opaque

        return opaque.recurrence(mode, gx, w_hh, list(state), b_hn, w_hr, lengths, reverse)
    return call_recurrence(_recurrences(backend), mode, gx, w_hh, state, b_hn, w_hr, lengths,
                           reverse, **extra)


def call_recurrence(impl: object, mode: str, gx: Tensor, w_hh: Tensor, state: Sequence[Tensor],
                    b_hn: Tensor | None, w_hr: Tensor | None, lengths: Tensor | None,
                    reverse: bool, **extra: object) -> tuple[Tensor, tuple[Tensor, ...]]:
    """``impl``'s (:mod:`fastrnn.reference` or the triton ops) recurrence for ``mode``, its
    cell-specific signature called from the common arguments -> (y, final state)."""
    if mode == "LSTM":
        y, h, c = impl.lstm_recurrence(gx, w_hh, state[0], state[1], w_hr, lengths, reverse,
                                       **extra)
        return y, (h, c)
    if mode == "GRU":
        y, h = impl.gru_recurrence(gx, w_hh, b_hn, state[0], lengths, reverse, **extra)
        return y, (h,)
    if mode == "SLSTM":
        y, *finals = impl.slstm_recurrence(gx, w_hh, *state, lengths, reverse, **extra)
        return y, tuple(finals)
    act = "tanh" if mode == "RNN_TANH" else "relu"
    y, h = impl.rnn_recurrence(gx, w_hh, state[0], act, lengths, reverse, **extra)
    return y, (h,)


def zoneout_keep(p: float, training: bool, like: Tensor, T: int) -> Tensor:
    """Zoneout's keep tensor for a state like ``like: (B, X)`` over T steps: a Bernoulli(p)
    mask ``(T, B, X)`` from torch's generator in training, the constant p in evaluation (the
    expectation, as in the zoneout paper and haste). The masks are drawn in float32 whatever
    the state's dtype (torch's draws depend on it), so a seed gives the same masks on every
    backend and dtype."""
    dtype = torch.promote_types(like.dtype, torch.float32)
    if training:
        drawn = torch.bernoulli(torch.full((T, *like.shape), p, device=like.device))
        return drawn if drawn.dtype == dtype else drawn.to(dtype)
    return torch.full((1, 1, 1), p, dtype=dtype, device=like.device)


def zoneout_unfusable(mode: str, proj_size: int) -> str | None:
    """Why the fused kernels cannot run zoneout for this layer (None: they can; with heads,
    as the dense block-diagonal matrix)."""
    if mode not in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"):
        return f"zoneout on {mode}"
    if proj_size:
        return "zoneout with proj_size"
    return None


def _zoneout_keeps(zoneout: tuple[float, float], training: bool, state: list[Tensor],
                   T: int) -> list[Tensor] | None:
    """The keep tensors of a layer's directions in one launch: per state, the directions'
    (T, B, X) keep values side by side (T, B, D*X), the masks drawn in the order ``_layer``
    draws them (so a seed gives the same masks on every backend); in evaluation the
    probability itself everywhere (the fused kernels read keep values per step)."""
    if not any(zoneout):
        return None
    D = state[0].shape[0]
    drawn = [[zoneout_keep(p, training, s[d], T).expand(T, *s[d].shape)
              for p, s in zip(zoneout, state)] for d in range(D)]
    return [torch.cat(per, dim=2) for per in zip(*drawn)]


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
    check: bool = True,
    zoneout: tuple[float, float] = (0.0, 0.0),
    dropconnect: float = 0.0,
    layer_norm: LayerNormConfig | None = None,
    num_heads: int = 1,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """A whole stack, time-major: input: (T, B, I), hx: (h0,) or (h0, c0) each (L*D, B, *).

    ``weights`` is the flat list in torch.nn's registration order. ``lengths: (B,)`` makes each
    sequence stop at its own length (padded outputs are zero). Returns ``output: (T, B, D*P)``
    and the final states stacked like ``hx``. The reference backend computes in float32 or
    better and returns ``input.dtype``. States and weights on another device than the input,
    or states of another dtype, raise a RuntimeError (``check``: whether to look; the modules
    look before, to raise torch's own message). ``zoneout``: probabilities (h, c) of keeping
    each state element's previous value per step (reference backend; see
    :func:`zoneout_keep`); ``dropconnect``: dropout on the elements of each ``W_hh``, one mask
    per call and layer and direction, in training (any backend: the recurrence gets the
    masked matrix). ``layer_norm``: the LayerNorm cells' normalisation (see
    :class:`LayerNormConfig`; the triton backend fuses it where :func:`fused_norm.fusable`
    says so, else runs the reference, warning once). ``num_heads``: each ``W_hh`` is
    ``(G*H, H/N)``, N heads' blocks (:func:`block_diagonal`); the triton backend runs every
    head as its own program group of one launch (no exchange between heads), the reference
    the dense matrix.
    """
    if input.size(0) == 0:
        raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
    if check and (message := check_tensors(
            input, hx, [*weights, *(layer_norm.weights if layer_norm else ())])):
        raise RuntimeError(message)
    dtype = input.dtype
    if backend == "triton" and layer_norm is not None:
        reason = fused_norm.fusable(num_heads)
        if reason:
            warn_once(f"fastrnn: the triton backend cannot fuse this {mode} ({reason}); "
                      "running the reference backend instead")
            backend = "reference"
    if backend == "reference":
        work = torch.promote_types(dtype, torch.float32)
        input = input.to(work)
        weights = [w.to(work) for w in weights]
        hx = [h.to(work) for h in hx]
        if layer_norm is not None:
            layer_norm = layer_norm._replace(weights=[w.to(work) for w in layer_norm.weights])
    elif layer_norm is not None and backend != "triton":
        raise ValueError(f"layer_norm runs on the reference or triton backend, not {backend!r}")
    D = 2 if bidirectional else 1
    x = input
    finals: list[list[Tensor]] = [[] for _ in hx]
    for layer in range(num_layers):
        per_direction = [
            _layer_weights(weights, layer, d, D, bias, proj_size > 0) for d in range(D)
        ]
        if dropconnect > 0 and training:
            per_direction = [(w[0], F.dropout(w[1], dropconnect, training=True), *w[2:])
                             for w in per_direction]
        state = [h[layer * D : (layer + 1) * D] for h in hx]
        fused_heads = num_heads > 1 and backend == "triton" and not any(zoneout) and (
            layer_norm is None)
        if num_heads > 1 and not fused_heads:
            per_direction = [(w[0], block_diagonal(w[1], num_heads), *w[2:])
                             for w in per_direction]
        norms = None
        if layer_norm is not None:
            n = layer_norm.per_layer()
            norms = [(layer_norm, layer_norm.weights[(layer * D + d) * n :][:n])
                     for d in range(D)]
        if fused_heads:
            x, last = _fused_heads_layer(mode, x, per_direction, state, lengths, num_heads)
        elif norms is not None and backend == "triton":
            x, last = fused_norm.layer(mode, x, per_direction, state, lengths, norms,
                                       _normalised_projection,
                                       _zoneout_keeps(zoneout, training, state, x.shape[0]))
        elif norms is not None or (any(zoneout) and (
                backend != "triton" or zoneout_unfusable(mode, proj_size))):
            x, last = _layer(backend, mode, x, per_direction, state, lengths, zoneout, training,
                             norms)
        elif backend == "triton":
            x, last = _fused_layer(backend, mode, x, per_direction, state, lengths,
                                   _zoneout_keeps(zoneout, training, state, x.shape[0]))
        else:
            x, last = _layer(backend, mode, x, per_direction, state, lengths)
        for acc, s in zip(finals, last):
            acc.append(s)
        if dropout > 0 and training and layer < num_layers - 1:
            x = F.dropout(x, p=dropout, training=True)
    return _as(x, dtype), tuple(_as(_cat(f), dtype) for f in finals)


_Weights = tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]


def _layer(
    backend: str, mode: str, x: Tensor, per_direction: list[_Weights], state: list[Tensor],
    lengths: Tensor | None, zoneout: tuple[float, float] = (0.0, 0.0), training: bool = False,
    norms: list[tuple[LayerNormConfig, Sequence[Tensor]]] | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One layer, a projection and a recurrence per direction: x: (T, B, I), state entries
    (D, B, *) -> (T, B, D*P) and the final states (D, B, *). ``norms``: per direction, the
    layer normalisation and its weights (see :class:`LayerNormConfig`)."""
    outs, finals = [], []
    for d, (w_ih, w_hh, b_ih, b_hh, w_hr) in enumerate(per_direction):
        norm = None
        if norms is None:
            gx, b_hn = input_projection(x, w_ih, b_ih, b_hh, mode)
        else:
            gx, b_hn, norm = _normalised_projection(x, w_ih, b_ih, b_hh, mode, *norms[d])
        states = [s[d] for s in state]
        keep = None
        if any(zoneout):
            keep = [zoneout_keep(p, training, s, x.shape[0]) for p, s in zip(zoneout, states)]
        y, last = recurrence(
            backend, mode, gx, w_hh, states, b_hn=b_hn, w_hr=w_hr, lengths=lengths,
            reverse=d == 1, zoneout=keep, norm=norm,
        )
        outs.append(y)
        finals.append(last)
    y = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return y, tuple(torch.stack(s) for s in zip(*finals))


def _normalised_projection(
    x: Tensor, w_ih: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, mode: str,
    config: LayerNormConfig, weights: Sequence[Tensor],
) -> tuple[Tensor, Tensor | None, reference.RecurrentNorm]:
    """The layer-normalised input projection ``gx = g_ih * LN(x W_ih^T) + biases`` (folded as
    :func:`input_projection` folds them) with GRU's b_hn and the recurrence's norm."""
    g_ih, g_hh, *cell = weights
    bias, b_hn = _fold_bias(b_ih, b_hh, mode)
    groups = num_gates(mode) if config.per_gate else 1
    gx = reference.layer_norm(_project(x, w_ih, None), g_ih, bias, config.eps, groups)
    w_c, b_c = cell if cell else (None, None)
    norm = reference.RecurrentNorm(g_hh, w_c, b_c, config.eps, config.per_gate, config.cell)
    return gx, b_hn, norm


def _as(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t.to(dtype)`` without the call (a microsecond or two) when it is already."""
    return t if t.dtype == dtype else t.to(dtype)


def _cat(tensors: list[Tensor]) -> Tensor:
    """torch.cat without the copy (and the launch) for a single tensor."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _stack(tensors: list[Tensor]) -> Tensor:
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def _fused_layer(
    backend: str, mode: str, x: Tensor, per_direction: list[_Weights], state: list[Tensor],
    lengths: Tensor | None, keeps: list[Tensor] | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One layer on the triton backend: one op for all its directions, their input projection
    (one GEMM) and one fused launch (shapes as ``_layer``'s; ``keeps``: zoneout's, see
    ``_zoneout_keeps``)."""
    w_ih, w_hh, b_ih, b_hh, w_hr = (list(w) for w in zip(*per_direction))
    folded = [_fold_bias(i, h, mode) for i, h in zip(b_ih, b_hh)]
    bias = None if folded[0][0] is None else _cat([f[0] for f in folded])
    b_hn = None if folded[0][1] is None else _stack([f[1] for f in folded])
    w = _cat(w_ih)
    if torch.is_autocast_enabled(x.device.type):
        # the projection runs inside the op, below autocast: cast its operands as autocast
        # casts a matmul's (the recurrence then runs in that dtype too)
        dtype = torch.get_autocast_dtype(x.device.type)
        x, w, bias = (None if t is None else t.to(dtype) for t in (x, w, bias))
    return _recurrences(backend).layer(
        mode, x, _stack(w_hh), state, w_ih=w, bias=bias, b_hn=b_hn,
        w_hr=None if w_hr[0] is None else _stack(w_hr), lengths=lengths, zoneout=keeps,
    )


def _fused_heads_layer(
    mode: str, x: Tensor, per_direction: list[_Weights], state: list[Tensor],
    lengths: Tensor | None, N: int,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One layer of N heads on the triton backend: per direction one launch whose D = N
    program groups are the heads (each its D x D blocks, its slice of h and c, no exchange
    between heads), all running that direction's way. Weights and states are laid out head
    by head for it (differentiable reshapes; the output comes back in torch's layout)."""
    from fastrnn.kernels.common import HEADS_FORWARD, HEADS_REVERSE

    G = num_gates(mode)
    outs, finals = [], []
    for d, (w_ih, w_hh, b_ih, b_hh, _) in enumerate(per_direction):
        H = w_hh.shape[0] // G
        Dh = H // N
        bias, b_hn = _fold_bias(b_ih, b_hh, mode)

        def by_head(t: Tensor, Dh: int = Dh) -> Tensor:  # gate-major -> head-major rows
            return t.reshape(G, N, Dh, *t.shape[1:]).transpose(0, 1).reshape(t.shape)

        w = by_head(w_ih)
        if torch.is_autocast_enabled(x.device.type):
            dtype = torch.get_autocast_dtype(x.device.type)
            x, w, bias = (None if t is None else t.to(dtype) for t in (x, w, bias))
        heads_state = [s[d].reshape(s.shape[1], N, Dh).transpose(0, 1).contiguous()
                       for s in state]
        y, last = _recurrences("triton").layer(
            mode, x, by_head(w_hh).reshape(N, G * Dh, Dh), heads_state, w_ih=w,
            bias=None if bias is None else by_head(bias),
            b_hn=None if b_hn is None else b_hn.reshape(N, Dh), lengths=lengths,
            reverse=HEADS_REVERSE if d == 1 else HEADS_FORWARD)
        outs.append(y)
        finals.append(tuple(s.transpose(0, 1).reshape(s.shape[1], H) for s in last))
    y = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return y, tuple(torch.stack(s) for s in zip(*finals))


def rnn_cell(
    mode: str,
    input: Tensor,
    hx: Sequence[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    backend: str = "reference",
    check: bool = True,
    layer_norm: LayerNormConfig | None = None,
) -> tuple[Tensor, ...]:
    """One step: input: (B, I), hx: (h,) or (h, c) each (B, H) -> the new state tuple
    (``check`` and ``layer_norm`` as :func:`rnn`'s)."""
    dtype = input.dtype
    weights = [w for w in (w_ih, w_hh, b_ih, b_hh) if w is not None]
    _, last = rnn(
        mode, input.unsqueeze(0), [h.unsqueeze(0) for h in hx], weights, bias=b_ih is not None,
        num_layers=1, dropout=0.0, training=False, bidirectional=False, backend=backend,
        check=check, layer_norm=layer_norm,
    )
    return tuple(_as(s.squeeze(0), dtype) for s in last)

