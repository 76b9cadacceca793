"""torch's autocast policy for RNNs, as the reference and triton backends follow it.

Under ``torch.autocast`` torch.nn's result dtypes depend on the cell, the device and the
implementation torch picks there (on the CPU: the LSTM's oneDNN layer runs in the autocast
dtype, the GRU's state arithmetic promotes back to float32, the Elman RNN stays in the autocast
dtype; a projection or packed input takes another implementation). Rather than copy that table,
:func:`result_dtypes` asks torch: it runs torch's own op once per configuration on a one-step,
one-row problem under the caller's autocast state and returns the dtypes it gave.
"""

from __future__ import annotations

import functools

import torch
from torch import _VF

__all__ = ["NATIVE_CELLS", "NATIVE_LAYERS", "result_dtypes"]

NATIVE_LAYERS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh,
                 "RNN_RELU": _VF.rnn_relu}
NATIVE_CELLS = {"LSTM": _VF.lstm_cell, "GRU": _VF.gru_cell, "RNN_TANH": _VF.rnn_tanh_cell,
                "RNN_RELU": _VF.rnn_relu_cell}
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


@functools.cache
def _probe(mode: str, cell: bool, device: torch.device, autocast: torch.dtype,
           dtype: torch.dtype, weight_dtype: torch.dtype, state_dtypes: tuple[torch.dtype, ...],
           proj: bool, packed: bool) -> tuple[torch.dtype, ...] | None:
    H, P = 2, 1 if proj else 2
    w = lambda *shape: torch.zeros(shape, dtype=weight_dtype, device=device)  # noqa: E731
    states = [torch.zeros(1, P, dtype=state_dtypes[0], device=device)]
    if mode == "LSTM":
        states.append(torch.zeros(1, H, dtype=state_dtypes[-1], device=device))
    weights = [w(_GATES[mode] * H, 1), w(_GATES[mode] * H, P), w(_GATES[mode] * H),
               w(_GATES[mode] * H)] + ([w(P, H)] if proj else [])
    x = torch.zeros(1, 1, dtype=dtype, device=device)
    with torch.no_grad():
        try:
            if cell:
                out = NATIVE_CELLS[mode](x, tuple(states) if mode == "LSTM" else states[0],
                                         *weights)
                return tuple(t.dtype for t in (out if mode == "LSTM" else (out,)))
            hx = [s[None] for s in states]
            hx = tuple(hx) if mode == "LSTM" else hx[0]
            args = (weights, True, 1, 0.0, False, False)
            if packed:
                batch_sizes = torch.ones(1, dtype=torch.int64)
                result = NATIVE_LAYERS[mode](x, batch_sizes, hx, *args)
            else:
                result = NATIVE_LAYERS[mode](x[None], hx, *args, False)
        except RuntimeError:  # torch's own op cannot run this (e.g. no bfloat16 oneDNN here)
            return None
    return tuple(t.dtype for t in result)


def result_dtypes(mode: str, *, cell: bool, input: torch.Tensor, weight: torch.Tensor,
                  states: tuple[torch.Tensor, ...], proj: bool = False,
                  packed: bool = False) -> tuple[torch.dtype, ...] | None:
    """The dtypes torch.nn returns under the current autocast state for this call (output
    then states; a cell: its states), or None outside autocast (nothing to change). Where
    torch's own op cannot run the configuration, everything takes the autocast dtype."""
    device_type = input.device.type
    if device_type == "meta" or not input.is_floating_point():
        return None  # (autocast has no meta device)
    if not torch.is_autocast_enabled(device_type):
        return None
    autocast = torch.get_autocast_dtype(device_type)
    found = _probe(mode, cell, input.device, autocast, input.dtype, weight.dtype,
                   tuple(s.dtype for s in states), proj, packed)
    return found or (autocast,) * (len(states) + (not cell))
