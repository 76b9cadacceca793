"""Building blocks of the Lightning models: a recurrent encoder and padding-aware pooling.

The encoder is a fastrnn ``RNN``/``LSTM``/``GRU``/``LayerNormLSTM``/``LayerNormGRU`` (or, for
baselines, torch.nn's own module).
Plain stacks use one multi-layer module, so its ``state_dict`` keys are exactly torch's. With
residual connections or layer normalization between layers, the stack is a ``ModuleList`` of
single-layer modules instead.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from fastrnn import BACKENDS as FASTRNN_BACKENDS
from fastrnn.nn import GRU, LSTM, RNN, SLSTM, LayerNormGRU, LayerNormLSTM

__all__ = ["CELLS", "BACKENDS", "POOLINGS", "RecurrentEncoder", "TemporalPooling", "make_rnn"]

CELLS = ("rnn", "lstm", "gru", "layernorm_lstm", "layernorm_gru", "slstm")
BACKENDS = (*FASTRNN_BACKENDS, "torch")
POOLINGS = ("last", "mean", "attention")

_FASTRNN = {"rnn": RNN, "lstm": LSTM, "gru": GRU, "layernorm_lstm": LayerNormLSTM,
            "layernorm_gru": LayerNormGRU, "slstm": SLSTM}
_TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def make_rnn(cell: str, backend: str | None = None, **kwargs) -> nn.Module:
    """Build a recurrent module; ``backend="torch"`` gives torch.nn's, anything else fastrnn's.

    ``kwargs`` are torch.nn's constructor arguments (``input_size``, ``hidden_size``, ...).
    """
    _check_choice("cell", cell, CELLS)
    if backend is not None:
        _check_choice("backend", backend, BACKENDS)
    if backend == "torch":
        if cell not in _TORCH:
            raise ValueError(f"torch.nn has no {cell} cell: use a fastrnn backend")
        return _TORCH[cell](**kwargs)
    return _FASTRNN[cell](**kwargs, backend=backend)


class RecurrentEncoder(nn.Module):
    """A stack of recurrent layers over ``x: (B, T, I)`` returning ``y: (B, T, D)``.

    ``D = hidden_size * (2 if bidirectional else 1)``. Sequences shorter than ``T`` are
    given by ``lengths: (B,)``; they are packed, so padding never enters the recurrence, and
    outputs past each length are zero. With ``residual`` each layer whose input width is ``D``
    adds its input to its output; with ``layer_norm`` a ``LayerNorm(D)`` follows each layer.
    ``zoneout`` and ``dropconnect``: the fastrnn modules' keywords (recurrent regularisers);
    ``num_heads``: their block-diagonal recurrence. ``cell="slstm"`` is :class:`fastrnn.SLSTM`.
    """

    def __init__(
        self,
        input_size: int,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        residual: bool = False,
        layer_norm: bool = False,
        backend: str | None = None,
        zoneout: float = 0.0,
        dropconnect: float = 0.0,
        num_heads: int = 1,
    ) -> None:
        super().__init__()
        _check_positive("input_size", input_size)
        _check_positive("hidden_size", hidden_size)
        _check_positive("num_layers", num_layers)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.output_size = hidden_size * (2 if bidirectional else 1)
        self.stacked = residual or layer_norm
        self.residual = residual
        common: dict = dict(hidden_size=hidden_size, batch_first=True,
                            bidirectional=bidirectional)
        extra: dict = {k: v for k, v, off in (("zoneout", zoneout, 0.0),
                                              ("dropconnect", dropconnect, 0.0),
                                              ("num_heads", num_heads, 1)) if v != off}
        if extra:
            if backend == "torch":
                raise ValueError(f"{', '.join(extra)} need fastrnn's modules, not "
                                 "backend='torch'")
            common.update(extra)
        if not self.stacked:
            self.rnn = make_rnn(
                cell,
                backend,
                input_size=input_size,
                num_layers=num_layers,
                dropout=dropout if num_layers > 1 else 0.0,
                **common,
            )
            return
        sizes = [input_size] + [self.output_size] * (num_layers - 1)
        self.layers = nn.ModuleList(make_rnn(cell, backend, input_size=s, **common) for s in sizes)
        self.norms = nn.ModuleList(
            nn.LayerNorm(self.output_size) if layer_norm else nn.Identity() for _ in sizes
        )
        self.dropout = nn.Dropout(dropout)

    def _run(self, rnn: nn.Module, x: Tensor, lengths: Tensor | None) -> Tensor:
        if lengths is None:
            return rnn(x)[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        return y

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: (B, T, I), lengths: (B,) or None -> y: (B, T, D)."""
        if not self.stacked:
            return self._run(self.rnn, x, lengths)
        for i, (rnn, norm) in enumerate(zip(self.layers, self.norms)):
            y = self._run(rnn, x, lengths)
            if i < self.num_layers - 1:
                y = self.dropout(y)
            if self.residual and y.shape[-1] == x.shape[-1]:
                y = y + x
            x = norm(y)
        if lengths is not None:
            x = x * _mask(lengths, x.shape[1], x.device).unsqueeze(-1).to(x.dtype)
        return x

    def load_rnn_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load the weights of a torch.nn ``RNN``/``LSTM``/``GRU`` with this shape of stack.

        Keys are torch's (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...); a stacked encoder
        maps layer ``k`` to ``layers[k]``.
        """
        if not self.stacked:
            self.rnn.load_state_dict(state_dict)
            return
        per_layer: list[dict[str, Tensor]] = [{} for _ in range(self.num_layers)]
        for key, value in state_dict.items():
            name, _, rest = key.rpartition("_l")
            layer, _, suffix = rest.partition("_")
            if not name or not layer.isdigit() or int(layer) >= self.num_layers:
                raise KeyError(f"unexpected key {key!r} for a {self.num_layers}-layer encoder")
            per_layer[int(layer)][f"{name}_l0" + (f"_{suffix}" if suffix else "")] = value
        for rnn, sd in zip(self.layers, per_layer):
            rnn.load_state_dict(sd)


def _mask(lengths: Tensor, T: int, device: torch.device) -> Tensor:
    """lengths: (B,) -> bool mask (B, T), True on valid steps."""
    return torch.arange(T, device=device).unsqueeze(0) < lengths.to(device).unsqueeze(1)


class TemporalPooling(nn.Module):
    """Pool ``y: (B, T, D)`` over time to ``(B, D)``, ignoring steps past ``lengths``.

    ``"last"`` takes each sequence's last valid step (for a bidirectional encoder: the forward
    half there and the backward half at step 0, both directions' final outputs); ``"mean"``
    averages valid steps; ``"attention"`` is a learned softmax weighting of valid steps.
    """

    def __init__(self, mode: str, size: int, bidirectional: bool = False) -> None:
        super().__init__()
        _check_choice("pooling", mode, POOLINGS)
        self.mode = mode
        self.bidirectional = bidirectional
        self.score = nn.Linear(size, 1) if mode == "attention" else None

    def forward(self, y: Tensor, lengths: Tensor | None = None) -> Tensor:
        """y: (B, T, D), lengths: (B,) or None -> (B, D)."""
        B, T, D = y.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=y.device)
        lengths = lengths.to(y.device)
        if self.mode == "last":
            last = y[torch.arange(B, device=y.device), lengths - 1]
            if self.bidirectional:
                half = D // 2
                last = torch.cat([last[:, :half], y[:, 0, half:]], dim=-1)
            return last
        mask = _mask(lengths, T, y.device)
        if self.mode == "mean":
            weights = mask.to(y.dtype) / lengths.to(y.dtype).unsqueeze(1)
        else:
            scores = self.score(y).squeeze(-1).masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=1)
        return torch.einsum("bt,btd->bd", weights, y)
