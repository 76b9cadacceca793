"""Weights to and from FlashRNN (NX-AI's ``flashrnn`` package): :func:`to_flashrnn`,
:func:`from_flashrnn`.

FlashRNN takes the input projection ``Wx: (B, T, G, N, D)`` computed outside, a recurrent
matrix ``R: (G_r, N, D, D)`` (its default ``"GHDP"`` layout: gate, head, output unit, input
unit) and one bias ``b: (G_b, N, D)``. A fastrnn layer of ``num_heads = N`` stores
``weight_hh: (G*H, D)``, whose rows ``g*H + n*D .. g*H + (n+1)*D`` are gate g's block for head
n, so ``R`` is ``weight_hh`` reshaped, up to the gate order:

- LSTM: gates i, f, g (FlashRNN's z), o in both; ``b = b_ih + b_hh``.
- GRU: ``Wx`` gates r, z, n as torch's ``W_ih``; ``R`` gates (n, r, z); ``b`` is
  ``(b_hn, b_ir + b_hr, b_iz + b_hz, b_in)``, FlashRNN's
  ``h' = z h + (1 - z) tanh(Wx_n + b_in + r (R_n h + b_hn))``, torch's GRU.
- RNN (FlashRNN's ``elman``, tanh only): ``b = b_ih + b_hh``.
- sLSTM: gates i, f, z, o in both; ``b = b_ih + b_hh``; from a zero state the same function
  (FlashRNN floors n at 1, which fastrnn's stabiliser rule never goes below).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fastrnn.nn.rnn import GRU, LSTM, RNN, RNNBase
from fastrnn.nn.slstm import SLSTM

__all__ = ["from_flashrnn", "to_flashrnn"]

_FUNCTIONS = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "elman", "SLSTM": "slstm"}
_CLASSES = {"lstm": LSTM, "gru": GRU, "elman": RNN, "slstm": SLSTM}
_GRU_R = [2, 0, 1]  # FlashRNN's recurrent gates (n, r, z) from torch's (r, z, n)
_GRU_BACK = [1, 2, 0]


def to_flashrnn(module: RNNBase, layer: int = 0, direction: int = 0) -> dict[str, Any]:
    """One layer and direction of a fastrnn ``LSTM``/``GRU``/``RNN`` (tanh)/``SLSTM`` as FlashRNN's
    arguments: ``{"function", "W": (G*H, I), "R": (G_r, N, D, D), "b": (G_b, N, D)}``, where
    ``Wx = (x @ W.T).view(B, T, G, N, D)`` is FlashRNN's input (detached copies)."""
    if module.mode not in _FUNCTIONS:
        raise ValueError(f"FlashRNN has no {module.mode} cell (its elman cell is tanh)")
    if getattr(module, "proj_size", 0):
        raise ValueError("FlashRNN has no LSTM projection (proj_size)")
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    N, H = module.num_heads, module.hidden_size
    D = H // N
    w_hh = getattr(module, "weight_hh" + suffix).detach()
    G = w_hh.shape[0] // H
    R = w_hh.reshape(G, N, D, D)
    zeros = w_hh.new_zeros(G * H)
    b_ih = getattr(module, "bias_ih" + suffix).detach() if module.bias else zeros
    b_hh = getattr(module, "bias_hh" + suffix).detach() if module.bias else zeros
    if module.mode == "GRU":
        R = R[_GRU_R]
        bi, bh = b_ih.view(3, H), b_hh.view(3, H)
        b = torch.stack([bh[2], bi[0] + bh[0], bi[1] + bh[1], bi[2]])
    else:
        b = (b_ih + b_hh).view(G, H)
    return {"function": _FUNCTIONS[module.mode],
            "W": getattr(module, "weight_ih" + suffix).detach().clone(),
            "R": R.clone(), "b": b.reshape(-1, N, D).clone()}


def from_flashrnn(W: Tensor, R: Tensor, b: Tensor, function: str = "lstm",
                  **kwargs: Any) -> RNNBase:
    """A one-layer fastrnn module computing FlashRNN's ``function`` (``"lstm"``, ``"gru"``,
    ``"elman"``, ``"slstm"``) with input weights ``W: (G*H, I)``, ``R: (G_r, N, D, D)`` and
    ``b: (G_b, N, D)`` (see the module docstring): ``num_heads = N``, FlashRNN's bias in
    ``bias_ih`` (GRU's ``b_hn`` in ``bias_hh``). ``kwargs`` go to the constructor
    (``batch_first=True`` for FlashRNN's ``(B, T, ...)`` layout, ``backend``, ...)."""
    if function not in _CLASSES:
        raise ValueError(f"function must be one of {tuple(_CLASSES)}, got {function!r}")
    G, N, D, _ = R.shape
    H = N * D
    module = _CLASSES[function](W.shape[1], H, num_heads=N, device=W.device, dtype=W.dtype,
                                **kwargs)
    b = b.reshape(-1, H)
    with torch.no_grad():
        module.weight_ih_l0.copy_(W)
        if function == "gru":
            module.weight_hh_l0.copy_(R[_GRU_BACK].reshape(G * H, D))
            module.bias_ih_l0.copy_(b[1:].reshape(-1))
            module.bias_hh_l0.copy_(torch.cat([torch.zeros_like(b[0]), torch.zeros_like(b[0]),
                                               b[0]]))
        else:
            module.weight_hh_l0.copy_(R.reshape(G * H, D))
            module.bias_ih_l0.copy_(b.reshape(-1))
            module.bias_hh_l0.zero_()
    return module
