"""Reference recurrences over a precomputed input projection.

Every function takes the input projection of all steps, ``gx: (T, B, G)``, with the biases
already folded in (except GRU's ``b_hn``, which sits inside the reset gate), loops over time,
and returns the per-step outputs and the final state. ``lengths: (B,)`` lets each sequence stop
at its own length: steps past it leave the state unchanged and write zero outputs, so the final
state is the one after each sequence's last step. ``reverse=True`` runs from each sequence's
last valid step back to step 0.

Arithmetic runs in float32 or better (``torch.promote_types(dtype, float32)``); outputs come
back in ``gx.dtype``. Autograd flows through the loop, so these also give reference gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CELL_NORMS", "RecurrentNorm", "gru_recurrence", "layer_norm", "lstm_recurrence",
           "rnn_recurrence", "slstm_recurrence"]

CELL_NORMS = ("output", "state", None)


class RecurrentNorm(NamedTuple):
    """Layer normalisation inside one layer and direction's recurrence.

    ``weight_hh: (G*H,)`` is the gain of the normalised recurrent projection ``h W_hh^T`` (its
    bias is the layer's ``b_hh``, already folded into gx or, for GRU's n block, ``b_hn``).
    LSTM only: ``weight_c, bias_c: (H,)``, the cell-state norm's gain and bias, applied as
    ``cell`` says: ``"output"`` (haste) ``h = o * tanh(LN(c))`` with the unnormalised c
    carried, ``"state"`` (PyTorch's fastrnns) ``c = LN(c)`` carried and ``h = o * tanh(c)``,
    None for no cell norm. ``per_gate``: statistics per gate block of H, not over all G*H.
    """

    weight_hh: Tensor
    weight_c: Tensor | None = None
    bias_c: Tensor | None = None
    eps: float = 1e-5
    per_gate: bool = False
    cell: str | None = "output"

    def cast(self, dtype: torch.dtype) -> RecurrentNorm:
        w, wc, bc = _cast((self.weight_hh, self.weight_c, self.bias_c), dtype)
        return self._replace(weight_hh=w, weight_c=wc, bias_c=bc)


def layer_norm(a: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float,
               groups: int = 1) -> Tensor:
    """Layer normalisation of ``a: (..., F)`` over each of ``groups`` equal blocks of its last
    dimension (biased variance, as torch.nn.LayerNorm), times ``weight: (F,)`` plus ``bias``."""
    blocks = a.unflatten(-1, (groups, a.shape[-1] // groups))
    out = F.layer_norm(blocks, blocks.shape[-1:], eps=eps).flatten(-2)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias

State = tuple[Tensor, ...]
Step = Callable[[Tensor, State], tuple[State, Tensor]]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _scan(
    step: Step, gx: Tensor, state: State, lengths: Tensor | None, reverse: bool,
    zoneout: Sequence[Tensor] | None = None,
) -> tuple[Tensor, State]:
    """Run ``step`` over ``gx: (T, B, G)`` from ``state``; returns ``(y: (T, B, P), state)``.

    ``zoneout``: one *keep* tensor per state entry, ``(T, B, X)`` or broadcastable (``(1, 1, 1)``
    for a constant): each step's state is ``keep * previous + (1 - keep) * new`` (a Bernoulli
    mask in training, the probability itself in evaluation: the expectation), and the output
    is the new h after it."""
    T = gx.shape[0]
    valid = None
    if lengths is not None:
        steps = torch.arange(T, device=gx.device).unsqueeze(1)
        valid = (steps < lengths.to(gx.device).unsqueeze(0)).unsqueeze(2)  # (T, B, 1)
    outputs: list[Tensor | None] = [None] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        new_state, y = step(gx[t], state)
        if zoneout is not None:
            keep = [k[t if k.shape[0] > 1 else 0].to(n.dtype) for k, n in zip(zoneout, new_state)]
            new_state = tuple(k * s + (1 - k) * n for k, s, n in zip(keep, state, new_state))
            y = new_state[0]
        if valid is not None:
            new_state = tuple(torch.where(valid[t], n, s) for n, s in zip(new_state, state))
            y = torch.where(valid[t], y, torch.zeros_like(y))
        state = new_state
        outputs[t] = y
    return torch.stack(outputs), state  # type: ignore[arg-type]


def _cast(tensors: Sequence[Tensor | None], dtype: torch.dtype) -> list[Tensor | None]:
    return [None if t is None else t.to(dtype) for t in tensors]


def _recurrent(h: Tensor, w_hh: Tensor, norm: RecurrentNorm | None, gates: int) -> Tensor:
    """The recurrent projection ``h W_hh^T: (B, G*H)``, layer-normalised (gain only) by
    ``norm`` when given."""
    a = h @ w_hh.t()
    if norm is None:
        return a
    return layer_norm(a, norm.weight_hh, None, norm.eps, gates if norm.per_gate else 1)


def lstm_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hr: Tensor | None = None,
    lengths: Tensor | None = None,
    reverse: bool = False,
    zoneout: Sequence[Tensor] | None = None,
    norm: RecurrentNorm | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM recurrence (torch gate order i, f, g, o).

    gx: (T, B, 4H) = x W_ih^T + b_ih + b_hh; w_hh: (4H, P); h0: (B, P); c0: (B, H);
    w_hr: (P, H) or None (then P = H); zoneout: keep tensors for h and c (see ``_scan``);
    norm: layer normalisation of ``h W_hh^T`` and of c (:class:`RecurrentNorm`).
    Returns y: (T, B, P), h_n: (B, P), c_n: (B, H).
    """
    dtype = gx.dtype
    work = _compute_dtype(dtype)
    gx, w_hh, h0, c0, w_hr = _cast((gx, w_hh, h0, c0, w_hr), work)
    norm = None if norm is None else norm.cast(work)

    def step(g: Tensor, state: State) -> tuple[State, Tensor]:
        h, c = state
        i, f, cand, o = (g + _recurrent(h, w_hh, norm, 4)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cand)
        out = c
        if norm is not None and norm.cell is not None:
            out = layer_norm(c, norm.weight_c, norm.bias_c, norm.eps)
            if norm.cell == "state":
                c = out
        h = torch.sigmoid(o) * torch.tanh(out)
        if w_hr is not None:
            h = h @ w_hr.t()
        return (h, c), h

    y, (h_n, c_n) = _scan(step, gx, (h0, c0), lengths, reverse, zoneout)
    return y.to(dtype), h_n.to(dtype), c_n.to(dtype)


def gru_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    b_hn: Tensor | None,
    h0: Tensor,
    lengths: Tensor | None = None,
    reverse: bool = False,
    zoneout: Sequence[Tensor] | None = None,
    norm: RecurrentNorm | None = None,
) -> tuple[Tensor, Tensor]:
    """GRU recurrence (torch gate order r, z, n); zoneout: a keep tensor for h (``_scan``).

    gx: (T, B, 3H) = x W_ih^T + b_ih + [b_hr, b_hz, 0]; w_hh: (3H, H); b_hn: (H,) or None;
    h0: (B, H). ``n = tanh(gx_n + r * (h W_hn^T + b_hn))``, ``h' = (1 - z) * n + z * h``;
    norm: layer normalisation of ``h W_hh^T`` (:class:`RecurrentNorm`, before b_hn).
    Returns y: (T, B, H), h_n: (B, H).
    """
    dtype = gx.dtype
    work = _compute_dtype(dtype)
    gx, w_hh, b_hn, h0 = _cast((gx, w_hh, b_hn, h0), work)
    norm = None if norm is None else norm.cast(work)

    def step(g: Tensor, state: State) -> tuple[State, Tensor]:
        (h,) = state
        x_r, x_z, x_n = g.chunk(3, dim=1)
        h_r, h_z, h_n = _recurrent(h, w_hh, norm, 3).chunk(3, dim=1)
        if b_hn is not None:
            h_n = h_n + b_hn
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        return (h,), h

    y, (h_n,) = _scan(step, gx, (h0,), lengths, reverse, zoneout)
    return y.to(dtype), h_n.to(dtype)


def rnn_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    nonlinearity: str = "tanh",
    lengths: Tensor | None = None,
    reverse: bool = False,
    zoneout: Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Elman recurrence ``h' = act(gx + h W_hh^T)`` with act tanh or relu; zoneout: a keep
    tensor for h (``_scan``).

    gx: (T, B, H) = x W_ih^T + b_ih + b_hh; w_hh: (H, H); h0: (B, H).
    Returns y: (T, B, H), h_n: (B, H).
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    act = torch.tanh if nonlinearity == "tanh" else torch.relu
    dtype = gx.dtype
    gx, w_hh, h0 = _cast((gx, w_hh, h0), _compute_dtype(dtype))

    def step(g: Tensor, state: State) -> tuple[State, Tensor]:
        h = act(g + state[0] @ w_hh.t())
        return (h,), h

    y, (h_n,) = _scan(step, gx, (h0,), lengths, reverse, zoneout)
    return y.to(dtype), h_n.to(dtype)


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
    """sLSTM recurrence (xLSTM, Beck et al. 2024, eqs. 8-17; gate order i, f, z, o), with the
    stabiliser state m of the exponential input gate::

        i~, f~, z~, o~ = gx + h W_hh^T
        m' = i~ where n == 0 (the first step from a zero state), else max(log sigmoid(f~) + m, i~)
        i = exp(i~ - m'),   f = exp(log sigmoid(f~) + m - m')
        c' = f c + i tanh(z~),   n' = f n + i,   h' = sigmoid(o~) c' / n'

    gx: (T, B, 4H) = x W_ih^T + b_ih + b_hh; w_hh: (4H, H); h0, c0, n0, m0: (B, H).
    Returns y: (T, B, H), h_n, c_n, n_n, m_n: (B, H).
    """
    dtype = gx.dtype
    gx, w_hh, h0, c0, n0, m0 = _cast((gx, w_hh, h0, c0, n0, m0), _compute_dtype(dtype))

    def step(g: Tensor, state: State) -> tuple[State, Tensor]:
        h, c, n, m = state
        i, f, z, o = (g + h @ w_hh.t()).chunk(4, dim=1)
        log_f = F.logsigmoid(f) + m
        m_new = torch.where(n == 0, i, torch.maximum(log_f, i))
        i_gate, f_gate = torch.exp(i - m_new), torch.exp(log_f - m_new)
        c = f_gate * c + i_gate * torch.tanh(z)
        n = f_gate * n + i_gate
        h = torch.sigmoid(o) * c / n
        return (h, c, n, m_new), h

    y, finals = _scan(step, gx, (h0, c0, n0, m0), lengths, reverse)
    return (y.to(dtype), *(s.to(dtype) for s in finals))  # type: ignore[return-value]
